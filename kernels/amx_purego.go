//go:build purego

package kernels

// amxOSEnable keeps AMX off in purego builds: they have no assembly, so
// no tile instruction could run.
func amxOSEnable() (bool, string) {
	return false, "built with -tags purego (no assembly)"
}

// amxCanRequest: purego builds never run tile instructions.
const amxCanRequest = false
