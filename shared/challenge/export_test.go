package challenge

// ZeroBits exposes zeroBits to the package's external tests.
var ZeroBits = zeroBits
