// Package wrk holds the wrk Lua scripts of `make bench` (product.lua, soldout.lua) so benchrun
// can write them out wherever it runs; people run the same files with wrk by hand.
package wrk

import "embed"

// Scripts holds product.lua and soldout.lua.
//
//go:embed *.lua
var Scripts embed.FS
