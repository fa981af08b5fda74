package precision

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Every constant round-trips through String, Parse, MarshalText and
// UnmarshalText, and its facts are the ones plans and kernels rely on.
func TestRoundTrip(t *testing.T) {
	want := []struct {
		p                Precision
		name             string
		bits             int
		integer, fc, tab bool
		tableLabel       string
		mx               bool
	}{
		{FP32, "fp32", 32, false, true, true, "fp32", false},
		{FP16, "fp16", 16, false, true, true, "fp16", false},
		{BF16, "bf16", 16, false, true, false, "", false},
		{Int8, "int8", 8, true, true, true, "int8-rowwise", false},
		{Int4, "int4", 4, true, false, true, "int4-rowwise", false},
		{Int2, "int2", 2, true, false, true, "int2-rowwise", false},
		{MXFP8E4M3, "mxfp8_e4m3", 8, false, true, true, "mxfp8_e4m3", true},
		{MXFP8E5M2, "mxfp8_e5m2", 8, false, true, true, "mxfp8_e5m2", true},
		{MXFP6E3M2, "mxfp6_e3m2", 6, false, true, true, "mxfp6_e3m2", true},
		{MXFP6E2M3, "mxfp6_e2m3", 6, false, true, true, "mxfp6_e2m3", true},
		{MXFP4, "mxfp4", 4, false, true, true, "mxfp4", true},
		{MXINT8, "mxint8", 8, false, true, true, "mxint8", true},
	}
	if got := All(); len(got) != len(want)+len(afterMX) {
		t.Fatalf("All() = %v, want %d precisions", got, len(want)+len(afterMX))
	}
	for i, w := range want {
		p := w.p
		if All()[i] != p {
			t.Errorf("All()[%d] = %v, want %v", i, All()[i], p)
		}
		if p.String() != w.name || p.Bits() != w.bits || p.IsInteger() != w.integer || p.ForFC() != w.fc || p.ForTable() != w.tab || p.TableLabel() != w.tableLabel || p.IsMX() != w.mx || !p.Valid() {
			t.Errorf("%d: %q %d bits integer %v fc %v table %v %q, want %+v", p, p.String(), p.Bits(), p.IsInteger(), p.ForFC(), p.ForTable(), p.TableLabel(), w)
		}
		q, err := Parse(w.name)
		if err != nil || q != p {
			t.Errorf("Parse(%q) = %v, %v", w.name, q, err)
		}
		b, err := p.MarshalText()
		if err != nil || string(b) != w.name {
			t.Errorf("%v.MarshalText() = %q, %v", p, b, err)
		}
		var r Precision
		if err := r.UnmarshalText(b); err != nil || r != p {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, r, err)
		}
		// Through encoding/json as plans and file metadata use it.
		j, err := json.Marshal(struct {
			P Precision `json:"precision"`
		}{p})
		if err != nil || string(j) != `{"precision":"`+w.name+`"}` {
			t.Errorf("json of %v: %s, %v", p, j, err)
		}
	}
	if got := Join(FC()); got != "fp32, fp16, bf16, int8, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8" {
		t.Errorf("FC() = %s", got)
	}
	if got := Join(Tables()); got != "fp32, fp16, int8, int4, int2, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, mixed" {
		t.Errorf("Tables() = %s", got)
	}
}

// Unknown names, other spellings among them, are refused with an
// *UnknownError that names the input and lists the known names.
func TestUnknownRefused(t *testing.T) {
	for _, s := range []string{"", "int9", "INT8", "fp8", " fp32", "fp32 ", "int8-rowwise", "int8-static", "float32", "MXFP4", "mxfp4_e2m1", "fp4_e2m1", "mxfp8", "mxint4"} {
		p, err := Parse(s)
		var u *UnknownError
		if !errors.As(err, &u) || u.Name != s || p != 0 {
			t.Errorf("Parse(%q) = %v, %v; want an *UnknownError", s, p, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, `"`+s+`"`) || !strings.Contains(msg, "fp32, fp16, bf16, int8, int4, int2, mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4, mxint8, mixed") {
			t.Errorf("Parse(%q): %s", s, msg)
		}
		var q Precision
		if err := q.UnmarshalText([]byte(s)); !errors.As(err, &u) {
			t.Errorf("UnmarshalText(%q) = %v", s, err)
		}
		var v struct {
			P Precision `json:"precision"`
		}
		if err := json.Unmarshal([]byte(`{"precision":"`+s+`"}`), &v); !errors.As(err, &u) {
			t.Errorf("json %q: %v, want an *UnknownError", s, err)
		}
	}
}

// The zero value (a field never set) and out-of-range values are not a
// precision: not valid, and MarshalText refuses them.
func TestZeroRefused(t *testing.T) {
	for _, p := range []Precision{0, Mixed + 1, 255} {
		if p.Valid() || p.ForFC() || p.ForTable() || p.Bits() != 0 || p.TableLabel() != "" || p.IsMX() || p.IsInteger() {
			t.Errorf("%d: valid %v fc %v table %v bits %d", p, p.Valid(), p.ForFC(), p.ForTable(), p.Bits())
		}
		if b, err := p.MarshalText(); err == nil {
			t.Errorf("%d.MarshalText() = %q, want an error", p, b)
		}
		if _, err := json.Marshal(struct{ P Precision }{p}); err == nil {
			t.Errorf("json.Marshal of precision %d succeeded", p)
		}
		if !strings.HasPrefix(p.String(), "Precision(") {
			t.Errorf("%d.String() = %q", p, p.String())
		}
	}
}

func TestActivation(t *testing.T) {
	for _, c := range []struct {
		a    Activation
		name string
	}{{Static, "static"}, {Dynamic, "dynamic"}} {
		a, err := ParseActivation(c.name)
		if err != nil || a != c.a || c.a.String() != c.name {
			t.Errorf("%q: %v, %v", c.name, a, err)
		}
		b, err := c.a.MarshalText()
		var r Activation
		if err != nil || r.UnmarshalText(b) != nil || r != c.a {
			t.Errorf("%v: text %q, %v, back %v", c.a, b, err, r)
		}
	}
	var e *ActivationError
	if _, err := ParseActivation("sometimes"); !errors.As(err, &e) || !strings.Contains(err.Error(), `"static" or "dynamic", not "sometimes"`) {
		t.Errorf("ParseActivation(sometimes): %v", err)
	}
	if _, err := Activation(0).MarshalText(); err == nil {
		t.Error("unset activation marshalled")
	}
	for _, c := range []struct {
		p    Precision
		a    Activation
		want string
	}{{Int8, Static, "int8-static"}, {Int8, Dynamic, "int8-dynamic"}, {Int8, 0, "int8"}, {FP16, 0, "fp16"}, {BF16, Dynamic, "bf16"}, {FP32, 0, "fp32"}, {MXFP4, 0, "mxfp4"}, {MXFP6E2M3, Dynamic, "mxfp6_e2m3-dynamic"}} {
		if got := FCLabel(c.p, c.a); got != c.want {
			t.Errorf("FCLabel(%v, %v) = %q, want %q", c.p, c.a, got, c.want)
		}
	}
}
