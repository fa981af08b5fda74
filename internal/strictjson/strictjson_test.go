package strictjson

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

type layer struct {
	Precision string `json:"precision"`
	Greedy    bool   `json:"greedy,omitempty"`
}

type Stats struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

type testDoc struct {
	Version int              `json:"version"`
	Layers  map[string]layer `json:"layers"`
	Bins    []uint64         `json:"bins,omitempty"`
	Scale   float32          `json:"scale,omitempty"`
	Pairs   [][3]uint64      `json:"pairs,omitempty"`
	Raw     json.RawMessage  `json:"raw,omitempty"`
	Any     any              `json:"any,omitempty"`
	Stats                    // promoted: lo, hi
	Skip    string           `json:"-"`
	Plain   int              // no tag: "Plain"
}

var opts = Options{Kind: "plan", Versions: []int{1}}

const good = `{"version": 1, "layers": {"top_l.0": {"precision": "int8"}, "emb_l.0": {"precision": "int4", "greedy": true}},
 "bins": [1, 2, 3], "pairs": [[1, 2, 3]], "raw": {"x": [1]}, "any": [{"a": 1}], "lo": -1, "hi": 2, "Plain": 4}`

func TestDecodeGood(t *testing.T) {
	var d testDoc
	if err := Decode("p.json", []byte(good), &d, opts); err != nil {
		t.Fatal(err)
	}
	var want testDoc
	if err := json.Unmarshal([]byte(good), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("decoded %+v, encoding/json %+v", d, want)
	}
	if d.Layers["emb_l.0"].Precision != "int4" || d.Lo != -1 || d.Plain != 4 {
		t.Fatalf("decoded %+v", d)
	}
}

// Each document here is accepted by encoding/json (checked below), which is
// why strictjson exists: every one must be refused, naming the path.
func TestRefusals(t *testing.T) {
	cases := []struct {
		name, doc string
		want      string // the whole message after "p.json: "
	}{
		{"duplicate top key", `{"version": 1, "layers": {}, "layers": {}}`, `layers: duplicate key`},
		{"duplicate nested key", `{"version": 1, "layers": {"top_l.0": {"precision": "int8", "precision": "fp32"}}}`,
			`layers["top_l.0"].precision: duplicate key`},
		{"duplicate map key", `{"version": 1, "layers": {"a": {"precision": "int8"}, "a": {"precision": "fp16"}}}`,
			`layers["a"]: duplicate key`},
		{"duplicate key in a raw value", `{"version": 1, "raw": {"x": 1, "x": 2}}`, `raw["x"]: duplicate key`},
		{"duplicate key in an interface", `{"version": 1, "any": [{"a": 1, "a": 2}]}`, `any[0]["a"]: duplicate key`},
		{"unknown field", `{"version": 1, "layers": {"a": {"precision": "int8", "colour": 1}}}`,
			`layers["a"].colour: unknown key (want one of greedy, precision)`},
		{"case-folded field", `{"version": 1, "layers": {"top_l.0": {"Precision": "int8"}}}`,
			`layers["top_l.0"].Precision: unknown key: field names are case-sensitive, did you mean "precision"?`},
		{"case-folded promoted field", `{"version": 1, "LO": 1}`, `LO: unknown key: field names are case-sensitive, did you mean "lo"?`},
		{"case-folded untagged field", `{"version": 1, "plain": 1}`, `plain: unknown key: field names are case-sensitive, did you mean "Plain"?`},
		{"ignored field", `{"version": 1, "Skip": "x"}`, `Skip: unknown key (want one of Plain, any, bins, hi, layers, lo, pairs, raw, scale, version)`},
		{"trailing object", `{"version": 1}{}`, `line 1, column 15: data after the end of the JSON object`},
		{"trailing garbage", "{\"version\": 1}\n x", `line 2, column 2: data after the end of the JSON object`},
		{"no version", `{"layers": {}}`, `no "version" (this rq reads plan version 1): not a plan written by rq`},
		{"version 2", `{"version": 2, "layers": {}}`, `version 2: this rq reads plan version 1`},
		{"version string", `{"version": "1"}`, `version: got a JSON string, want an integer`},
		{"version fraction", `{"version": 1.5}`, `version: got a JSON number 1.5, want an integer`},
		{"type error", `{"version": 1, "layers": {"a": {"precision": 8}}}`, `layers["a"].precision: got a JSON number, want a string`},
		{"type error in an array", `{"version": 1, "bins": [1, 2, -3]}`, `bins[2]: got a JSON number -3, want a non-negative integer`},
		{"type error in a nested array", `{"version": 1, "pairs": [[1, 2, 3], [4, "5", 6]]}`, `pairs[1][1]: got a JSON string, want a non-negative integer`},
		{"float32 overflow", `{"version": 1, "scale": 1e39}`, `scale: got a JSON number 1e39, want a number within float32 range`},
		{"object for an array", `{"version": 1, "bins": {"a": 1}}`, `bins: got a JSON object, want an array of numbers`},
		{"array for a map", `{"version": 1, "layers": [1]}`, `layers: got a JSON array, want an object`},
		{"NaN in an array", `{"version": 1, "bins": [1, NaN]}`,
			`bins[1]: line 1, column 28: invalid character 'N' looking for beginning of value (NaN and Infinity are not JSON numbers: every number must be finite)`},
		{"truncated", `{"version": 1, "layers": {"a": {"preci`, `layers["a"]: unexpected end of file (truncated?)`},
		{"empty", ``, `empty document: want a JSON object`},
		{"blank", " \n", `empty document: want a JSON object`},
		{"not an object", `[1]`, `want a JSON object, found an array`},
		{"null", `null`, `want a JSON object, found null`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d testDoc
			err := Decode("p.json", []byte(c.doc), &d, opts)
			if err == nil {
				t.Fatal("accepted")
			}
			if got := err.Error(); got != "p.json: "+c.want {
				t.Fatalf("error\n %s\nwant\n p.json: %s", got, c.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "p.json" {
				t.Fatalf("%T %#v, want an *Error naming the file", err, err)
			}
		})
	}
}

// The refusals above that encoding/json accepts: the reason for the package.
func TestEncodingJSONAccepts(t *testing.T) {
	for _, doc := range []string{
		`{"version": 1, "layers": {"top_l.0": {"precision": "int8", "precision": "fp32"}}}`,
		`{"version": 1, "layers": {"top_l.0": {"Precision": "int8"}}}`,
	} {
		var d testDoc
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("encoding/json refuses %s: %v", doc, err)
		}
		if err := Decode("p.json", []byte(doc), &d, opts); err == nil {
			t.Fatalf("strictjson accepts %s", doc)
		}
	}
}

func TestVersions(t *testing.T) {
	o := Options{Kind: "evaluation state", Versions: []int{2, 3}, Unsupported: map[int]string{1: "re-run it"}}
	var d testDoc
	for _, v := range []string{"2", "3"} {
		if err := Decode("s.json", []byte(`{"version": `+v+`}`), &d, o); err != nil {
			t.Error(err)
		}
	}
	err := Decode("s.json", []byte(`{"version": 1}`), &d, o)
	if err == nil || err.Error() != "s.json: version 1: this rq reads evaluation state versions 2 and 3; re-run it" {
		t.Errorf("version 1: %v", err)
	}
	// The version comes before unknown keys: a newer document says so.
	err = Decode("s.json", []byte(`{"version": 4, "new_field": 1}`), &d, o)
	if err == nil || !strings.Contains(err.Error(), "version 4") {
		t.Errorf("version 4 with a new field: %v", err)
	}
	// Without Versions, no version is needed.
	if err := Decode("s.json", []byte(`{"lo": 1}`), &d, Options{}); err != nil {
		t.Error(err)
	}
}

func TestDepth(t *testing.T) {
	deep := func(n int) string {
		return `{"version": 1, "any": ` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	var d testDoc
	if err := Decode("p.json", []byte(deep(MaxDepth-1)), &d, opts); err != nil {
		t.Fatalf("depth %d: %v", MaxDepth, err)
	}
	err := Decode("p.json", []byte(deep(MaxDepth)), &d, opts)
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Fatalf("depth %d: %v", MaxDepth+1, err)
	}
	// Deep nesting where only numbers belong is a type error, found without
	// recursion (encoding/json's own limit is 10000).
	err = Decode("p.json", []byte(`{"version": 1, "bins": `+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`}`), &d, opts)
	if err == nil {
		t.Fatal("5000 nested arrays accepted as bins")
	}
}

func TestSizeCap(t *testing.T) {
	o := opts
	o.MaxBytes = 100
	doc := `{"version": 1, "bins": [` + strings.Repeat("1,", 50) + `1]}`
	var d testDoc
	err := Decode("p.json", []byte(doc), &d, o)
	if err == nil || err.Error() != "p.json: 127 bytes, more than 100 bytes, the limit for a file of kind \"plan\" (hostile or corrupt file?)" {
		t.Fatalf("%v", err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "big.json")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ReadFile(p, &d, o); err == nil || !strings.Contains(err.Error(), "127 bytes, more than 100 bytes") {
		t.Fatalf("ReadFile: %v", err)
	}
	// A reader that is not a file is cut at the cap.
	if err := Read("stdin", strings.NewReader(doc), &d, o); err == nil || !strings.Contains(err.Error(), "stdin: more than 100 bytes") {
		t.Fatalf("Read: %v", err)
	}
	o.MaxBytes = int64(len(doc))
	if err := ReadFile(p, &d, o); err != nil {
		t.Fatalf("a document at the cap: %v", err)
	}
}

func TestReadFileNotRegular(t *testing.T) {
	var d testDoc
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Skip(err)
	}
	// Opening a FIFO for reading blocks until a writer comes: it must be
	// refused before.
	err := ReadFile(p, &d, opts)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("%v", err)
	}
	if err := ReadFile(t.TempDir(), &d, opts); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	if err := ReadFile(filepath.Join(t.TempDir(), "none"), &d, opts); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestPath(t *testing.T) {
	p := Path{{Name: "layers"}, {Name: "top_l.0", IsKey: true}, {Name: "ranges"}, {Name: "l2"}, {Index: 1, IsIndex: true}}
	if got := p.String(); got != `layers["top_l.0"].ranges.l2[1]` {
		t.Fatal(got)
	}
	if got := (Path{{Name: "a\"b", IsKey: true}}).String(); got != `["a\"b"]` {
		t.Fatal(got)
	}
}
