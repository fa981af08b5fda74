package search

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The trace reader is strict: each of these edits of a trace rq wrote was
// accepted before (the last duplicate won, names matched ignoring case,
// or the version was checked only after decoding) and is now an error
// naming the file and the JSON path.
func TestReadTraceStrict(t *testing.T) {
	seed, err := os.ReadFile("testdata/trace.json")
	if err != nil {
		t.Fatal(err)
	}
	text := string(seed)
	if _, err := ReadTrace("testdata/trace.json"); err != nil {
		t.Fatalf("the trace rq wrote: %v", err)
	}
	edit := func(old, new string) string {
		if !strings.Contains(text, old) {
			t.Fatalf("%q not in the trace", old)
		}
		return strings.Replace(text, old, new, 1)
	}
	cases := []struct {
		name, doc, want string
	}{
		{"duplicate precision", edit(`"fc0": {
          "precision": "int8",`, `"fc0": {
          "precision": "int8", "precision": "fp32",`), `entries[1].plan["fc0"].precision: duplicate key`},
		{"duplicate verdict", edit(`"verdict": "fail",`, `"verdict": "fail", "verdict": "pass",`), `entries[1].verdict: duplicate key`},
		{"case-folded field", edit(`"verdict": "fail",`, `"Verdict": "fail",`),
			`entries[1].Verdict: unknown key: field names are case-sensitive, did you mean "verdict"?`},
		{"case-folded promoted field", edit(`"delta_auc": {
        "point": -0.0008028904054596664`, `"DELTA_AUC": {
        "point": -0.0008028904054596664`), `entries[1].DELTA_AUC: unknown key: field names are case-sensitive`},
		{"case-folded plan field", edit(`"weight_range": "narrow"`, `"Weight_Range": "narrow"`),
			`entries[1].plan["fc0"].Weight_Range: unknown key: field names are case-sensitive, did you mean "weight_range"?`},
		{"unknown field", edit(`"seed": 1,`, `"seed": 1, "sead": 2,`), `sead: unknown key (want one of`},
		{"trailing data", text + "{}\n", `data after the end of the JSON object`},
		{"version 2", edit(`"version": 1`, `"version": 2`), `version 2: this rq reads search trace version 1`},
		{"truncated", text[:len(text)/2], `unexpected end of file (truncated?)`},
		{"type", edit(`"bytes": 38304`, `"bytes": "38304"`), `entries[1].bytes: got a JSON string, want an integer`},
	}
	dir := t.TempDir()
	for _, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".json")
		if err := os.WriteFile(p, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadTrace(p)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), p+": ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error\n %v\nwant %s: ...%s", c.name, err, p, c.want)
		}
	}
	if _, err := DecodeTrace(io.MultiReader(strings.NewReader(text), spaces{})); err == nil || !strings.Contains(err.Error(), "the limit for a file of kind \"search trace\"") {
		t.Errorf("oversized trace: %v", err)
	}
}

// spaces reads as endless blanks.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}
