//go:build (!linux || !amd64) && !purego

package kernels

import "runtime"

// amxOSEnable keeps AMX off where rq has no way to ask for the tile state:
// the permission request is written for Linux on amd64 only.
func amxOSEnable() (bool, string) {
	return false, "AMX is enabled only on linux/amd64, not " + runtime.GOOS + "/" + runtime.GOARCH
}

// amxCanRequest: this build cannot ask the OS for the tile state.
const amxCanRequest = false
