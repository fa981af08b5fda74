package precision

import (
	"fmt"
	"strings"
)

// Precision is how a layer's weights (an FC layer's matrix, an embedding
// table's rows) are stored. The zero value is no precision: a plan entry
// or a struct field that was never set is refused (MarshalText fails,
// Valid is false) rather than silently meaning fp32.
type Precision uint8

// The precisions, in the order their names are listed (widest float
// first, then the integers by width, then the OCP Microscaling block
// formats, see IsMX; then mixed, tables whose rows are at two of the
// others, see IsMixed).
const (
	FP32 Precision = iota + 1
	FP16
	BF16
	Int8
	Int4
	Int2
	MXFP8E4M3
	MXFP8E5M2
	MXFP6E3M2
	MXFP6E2M3
	MXFP4
	MXINT8
	// Mixed is a table whose hottest rows are stored at one table
	// precision and the rest at another (issue 15): the plan names the
	// two and the hot share of rows (quantize.LayerPlan).
	Mixed
)

// facts is everything rq knows about one precision.
type facts struct {
	name    string // plan JSON, rq.layers metadata, ladders
	bits    int    // storage bits per weight (scales and biases aside)
	integer bool
	// mx: an OCP Microscaling block format (blocks of 32 values sharing
	// an E8M0 power-of-two scale). Not integer even for mxint8: integer
	// means the row-wise and per-channel affine machinery (min/max
	// ranges, scales and zero points, greedy ranges), which MX does not use.
	mx bool
	fc bool // an FC layer can hold it
	// table: an embedding table can hold it, named tableLabel in reports
	// and cost models (integer tables are row-wise: a scale and bias per
	// row, FBGEMM's fused layouts).
	table      bool
	tableLabel string
}

// known is indexed by Precision; index 0, no precision, has no name.
var known = [...]facts{
	// Mixed is listed first only to keep its row apart from the others'
	// (keyed rows: the order here changes nothing). It has no one width
	// (bits 0): its rows are at two other table precisions.
	Mixed: {name: "mixed", table: true, tableLabel: "mixed"},

	FP32: {name: "fp32", bits: 32, fc: true, table: true, tableLabel: "fp32"},
	FP16: {name: "fp16", bits: 16, fc: true, table: true, tableLabel: "fp16"},
	BF16: {name: "bf16", bits: 16, fc: true},
	Int8: {name: "int8", bits: 8, integer: true, fc: true, table: true, tableLabel: "int8-rowwise"},
	Int4: {name: "int4", bits: 4, integer: true, table: true, tableLabel: "int4-rowwise"},
	Int2: {name: "int2", bits: 2, integer: true, table: true, tableLabel: "int2-rowwise"},
	// The MX formats' labels are their names: the name already says the
	// layout (blocks of 32 along the row), as "-rowwise" does for int4.
	MXFP8E4M3: {name: "mxfp8_e4m3", bits: 8, mx: true, fc: true, table: true, tableLabel: "mxfp8_e4m3"},
	MXFP8E5M2: {name: "mxfp8_e5m2", bits: 8, mx: true, fc: true, table: true, tableLabel: "mxfp8_e5m2"},
	MXFP6E3M2: {name: "mxfp6_e3m2", bits: 6, mx: true, fc: true, table: true, tableLabel: "mxfp6_e3m2"},
	MXFP6E2M3: {name: "mxfp6_e2m3", bits: 6, mx: true, fc: true, table: true, tableLabel: "mxfp6_e2m3"},
	MXFP4:     {name: "mxfp4", bits: 4, mx: true, fc: true, table: true, tableLabel: "mxfp4"},
	MXINT8:    {name: "mxint8", bits: 8, mx: true, fc: true, table: true, tableLabel: "mxint8"},
}

// All lists every precision in order.
func All() []Precision {
	ps := make([]Precision, 0, len(known)-1)
	for p := Precision(1); int(p) < len(known); p++ {
		ps = append(ps, p)
	}
	return ps
}

// FC lists the precisions an FC layer can hold, in order.
func FC() []Precision { return filter(Precision.ForFC) }

// Tables lists the precisions an embedding table can hold, in order.
func Tables() []Precision { return filter(Precision.ForTable) }

func filter(keep func(Precision) bool) []Precision {
	var ps []Precision
	for _, p := range All() {
		if keep(p) {
			ps = append(ps, p)
		}
	}
	return ps
}

// Join names ps as error messages list them: "fp32, fp16, bf16, int8".
func Join(ps []Precision) string {
	n := make([]string, len(ps))
	for i, p := range ps {
		n[i] = p.String()
	}
	return strings.Join(n, ", ")
}

// Valid reports whether p is one of the constants (not the zero value).
func (p Precision) Valid() bool { return p > 0 && int(p) < len(known) }

// String is p's name ("fp32", "int4"), as plans and quantized files write
// it; "Precision(N)" for a value that is not one.
func (p Precision) String() string {
	if !p.Valid() {
		return fmt.Sprintf("Precision(%d)", uint8(p))
	}
	return known[p].name
}

// Bits is the storage width of one weight (0 for an invalid p).
func (p Precision) Bits() int { return known[p.index()].bits }

// IsInteger reports whether weights are stored as integer codes with
// affine scales (int8, int4, int2): row-wise or per-channel ranges. The MX
// formats, mxint8 among them, are not: see IsMX.
func (p Precision) IsInteger() bool { return known[p.index()].integer }

// IsMX reports whether p is an OCP Microscaling block format (mxfp8_e4m3,
// mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8): blocks of 32 values
// with one shared E8M0 scale, no bias: embedding tables' rows, and FC
// layers' weights in blocks along the input dimension.
func (p Precision) IsMX() bool { return known[p.index()].mx }

// IsMixed reports whether p is the mixed-precision table format: hot rows
// at one table precision, the others at another (never itself mixed).
func (p Precision) IsMixed() bool { return p == Mixed }

// ForFC reports whether an FC layer can be stored at p.
func (p Precision) ForFC() bool { return known[p.index()].fc }

// ForTable reports whether an embedding table can be stored at p.
func (p Precision) ForTable() bool { return known[p.index()].table }

// TableLabel names a table stored at p in reports and cost models: the
// precision, and "-rowwise" for the integer formats ("int4-rowwise"), the
// MX formats by their names ("mxfp4"); "" when no table can be stored at p.
func (p Precision) TableLabel() string { return known[p.index()].tableLabel }

// index maps an invalid p to the empty row 0.
func (p Precision) index() Precision {
	if !p.Valid() {
		return 0
	}
	return p
}

// UnknownError is the one error for a precision name rq does not know,
// wherever the name came from (a plan, a ladder, a quantized file's
// metadata); callers wrap it with the file and layer.
type UnknownError struct {
	Name string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown precision %q; precisions: %s", e.Name, Join(All()))
}

// Parse maps a name to its precision, or returns an *UnknownError. Names
// are exact (lower case, as rq writes them): a plan that says "INT8" is
// refused rather than guessed at.
func Parse(s string) (Precision, error) {
	for _, p := range All() {
		if known[p].name == s {
			return p, nil
		}
	}
	return 0, &UnknownError{Name: s}
}

// MarshalText writes p's name; the zero value and other invalid values
// are an error, so a layer whose precision was never set cannot be
// written as anything.
func (p Precision) MarshalText() ([]byte, error) {
	if !p.Valid() {
		return nil, fmt.Errorf("precision: no precision (%d) to write", uint8(p))
	}
	return []byte(known[p].name), nil
}

// UnmarshalText parses a name with Parse.
func (p *Precision) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
