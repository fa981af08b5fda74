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
		{"cold", unsafe.Offsetof(a.cold), 80},
		{"nunits", unsafe.Offsetof(a.nunits), 152},
		{"colMask", unsafe.Offsetof(a.colMask), 160},
		{"pfdist", unsafe.Offsetof(a.pfdist), 168},
		{"pfend", unsafe.Offsetof(a.pfend), 176},
		{"consts", unsafe.Offsetof(a.consts), 184},
		{"part.data", unsafe.Offsetof(pa.data), 0},
		{"part.rb", unsafe.Offsetof(pa.rb), 8},
		{"part.fmt", unsafe.Offsetof(pa.fmt), 16},
		{"part.sboff", unsafe.Offsetof(pa.sboff), 24},
		{"part.lines", unsafe.Offsetof(pa.lines), 32},
		{"part.tail", unsafe.Offsetof(pa.tail), 40},
		{"part.kind", unsafe.Offsetof(pa.kind), 48},
		{"part.scales", unsafe.Offsetof(pa.scales), 56},
		{"part.ns", unsafe.Offsetof(pa.ns), 64},
		{"part size", unsafe.Sizeof(pa), 72},
		{"consts.lut", unsafe.Offsetof(c.lut), 128},
		{"consts.masks", unsafe.Offsetof(c.masks), 320},
		{"consts.qf", unsafe.Offsetof(c.qf), 384},
		{"consts.q2f", unsafe.Offsetof(c.q2f), 448},
		{"consts.fp4", unsafe.Offsetof(c.fp4), 512},
		{"consts.slut", unsafe.Offsetof(c.slut), 576},
		{"map word", unsafe.Sizeof(mixedWord{}), 16},
		{"map rank", unsafe.Offsetof(mixedWord{}.rank), 8},
	} {
		if f.got != f.want {
			t.Errorf("%s at %d, the assembly reads %d", f.name, f.got, f.want)
		}
	}
}
