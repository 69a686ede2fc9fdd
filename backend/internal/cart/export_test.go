package cart

// QuickQuantity is quickQuantity, for the fuzz target's differential check.
var QuickQuantity = quickQuantity
