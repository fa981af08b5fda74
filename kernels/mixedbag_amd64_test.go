//go:build !purego

package kernels

import (
	"testing"
	"unsafe"
)

// TestMixedArgsLayout: the offsets of mixedArgs and mixedPartArgs are the
// ones mixedbag_amd64.s and the generator (internal/gen/mixedbag) use, and
// mixedKConsts' fields where the kernels load them.
func TestMixedArgsLayout(t *testing.T) {
	var a mixedArgs
	var pa mixedPartArgs
	var c mixedKConsts
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"bitmap", unsafe.Offsetof(a.bitmap), 0},
		{"rank", unsafe.Offsetof(a.rank), 8},
		{"hot", unsafe.Offsetof(a.hot), 16},
		{"cold", unsafe.Offsetof(a.cold), 72},
		{"nunits", unsafe.Offsetof(a.nunits), 128},
		{"colMask", unsafe.Offsetof(a.colMask), 136},
		{"pfdist", unsafe.Offsetof(a.pfdist), 144},
		{"pfend", unsafe.Offsetof(a.pfend), 152},
		{"consts", unsafe.Offsetof(a.consts), 160},
		{"part.data", unsafe.Offsetof(pa.data), 0},
		{"part.rb", unsafe.Offsetof(pa.rb), 8},
		{"part.fmt", unsafe.Offsetof(pa.fmt), 16},
		{"part.sboff", unsafe.Offsetof(pa.sboff), 24},
		{"part.lines", unsafe.Offsetof(pa.lines), 32},
		{"part.tail", unsafe.Offsetof(pa.tail), 40},
		{"part.kind", unsafe.Offsetof(pa.kind), 48},
		{"part size", unsafe.Sizeof(pa), 56},
		{"consts.lut", unsafe.Offsetof(c.lut), 128},
		{"consts.masks", unsafe.Offsetof(c.masks), 320},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, the assembly reads %d", f.name, f.got, f.want)
		}
	}
}
