package kernels

import (
	"testing"

	"github.com/rqtools/rq/precision"
)

// Every table format maps to its precision and back, and its name is the
// precision's table label; bf16 and invalid precisions have no format.
func TestTableFormatPrecision(t *testing.T) {
	want := map[TableFormat]struct {
		p    precision.Precision
		name string
	}{
		TableF32: {precision.FP32, "fp32"},
		TableF16: {precision.FP16, "fp16"},
		TableQ8:  {precision.Int8, "int8-rowwise"},
		TableQ4:  {precision.Int4, "int4-rowwise"},
		TableQ2:  {precision.Int2, "int2-rowwise"},
	}
	for f, w := range want {
		if f.Precision() != w.p || f.String() != w.name || f.Bits() != w.p.Bits() {
			t.Errorf("%d: precision %v name %q bits %d, want %v %q", f, f.Precision(), f.String(), f.Bits(), w.p, w.name)
		}
		if g, ok := TableFormatOf(w.p); !ok || g != f {
			t.Errorf("TableFormatOf(%v) = %v, %v", w.p, g, ok)
		}
	}
	for _, p := range precision.All() {
		if _, ok := TableFormatOf(p); ok != (p.ForTable() && !p.IsMX() && !p.IsMixed()) { // MX tables: MXFormatOf; mixed: MixedBagTable
			t.Errorf("TableFormatOf(%v): %v, but ForTable is %v", p, ok, p.ForTable())
		}
	}
	if _, ok := TableFormatOf(0); ok {
		t.Error("TableFormatOf(0) found a format")
	}
	if f := TableFormat(0); f.Precision() != 0 || f.String() != "TableFormat(0)" {
		t.Errorf("invalid format: %v %q", f.Precision(), f.String())
	}
}
