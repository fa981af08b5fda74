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
		{"idmap", unsafe.Offsetof(a.idmap), 0},
		{"hot", unsafe.Offsetof(a.hot), 8},
		{"cold", unsafe.Offsetof(a.cold), 64},
		{"nunits", unsafe.Offsetof(a.nunits), 120},
		{"colMask", unsafe.Offsetof(a.colMask), 128},
		{"pfdist", unsafe.Offsetof(a.pfdist), 136},
		{"pfend", unsafe.Offsetof(a.pfend), 144},
		{"consts", unsafe.Offsetof(a.consts), 152},
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
		{"consts.qf", unsafe.Offsetof(c.qf), 384},
		{"consts.q2f", unsafe.Offsetof(c.q2f), 448},
		{"map word", unsafe.Sizeof(mixedWord{}), 16},
		{"map rank", unsafe.Offsetof(mixedWord{}.rank), 8},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, the assembly reads %d", f.name, f.got, f.want)
		}
	}
}
