// Package nginx holds the nginx + Lua peer of `make bench`: the nginx.conf template and the Lua
// module it loads. benchrun renders them into a temporary directory (bench/internal/nginxpeer).
package nginx

import "embed"

// Files holds nginx.conf.tmpl and peer.lua.
//
//go:embed nginx.conf.tmpl peer.lua
var Files embed.FS
