package calibrate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
)

const smallFile = "testdata/small.json"

func readSmall(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The committed file is exactly what Encode makes of it (canonical).
func TestTestdataCanonical(t *testing.T) {
	data := readSmall(t)
	r, err := Read(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Errorf("Read + Encode changed %s:\n%s", smallFile, out)
	}
	// And it is what Run makes of the synthetic data today, up to the
	// rounding of the forward pass, which differs between the GEMM
	// implementations (assembly or -tags purego): same layers and counts,
	// ranges within 1e-5.
	fresh := smallRanges(t, 0)
	close := func(a, b float64) bool { return math.Abs(a-b) <= 1e-5*(1+math.Abs(b)) }
	for name, want := range r.Layers {
		got, ok := fresh.Layers[name]
		if !ok {
			t.Fatalf("Run no longer produces layer %s", name)
		}
		if got.Hist.Count() != want.Hist.Count() || !close(float64(got.Hist.Min()), float64(want.Hist.Min())) || !close(float64(got.Hist.Max()), float64(want.Hist.Max())) {
			t.Errorf("%s: Run gives count %d [%v, %v], %s has %d [%v, %v]", name, got.Hist.Count(), got.Hist.Min(), got.Hist.Max(),
				smallFile, want.Hist.Count(), want.Hist.Min(), want.Hist.Max())
		}
		for m, wr := range want.Ranges {
			gr := got.Ranges[m]
			if !close(float64(gr[0]), float64(wr[0])) || !close(float64(gr[1]), float64(wr[1])) {
				t.Errorf("%s %s: Run gives %v, %s has %v", name, m, gr, smallFile, wr)
			}
		}
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	r := smallRanges(t, 1)
	p := filepath.Join(t.TempDir(), "ranges.json")
	if err := r.Write(p); err != nil {
		t.Fatal(err)
	}
	if r.File != p {
		t.Errorf("File %q after Write", r.File)
	}
	back, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if back.Version != Version || back.ModelSHA256 != r.ModelSHA256 || back.Rows != r.Rows || back.Data != r.Data ||
		back.Method != r.Method || back.Percentile != r.Percentile || back.Levels != r.Levels {
		t.Errorf("header: got %+v, want %+v", back, r)
	}
	for name, l := range r.Layers {
		b := back.Layers[name]
		if b == nil || b.FollowsReLU != l.FollowsReLU || !b.Hist.equal(l.Hist) || !weightsEqual(b.Weight, l.Weight) {
			t.Errorf("%s: layer changed in the round trip", name)
			continue
		}
		for _, m := range Methods {
			if b.Ranges[m] != l.Ranges[m] {
				t.Errorf("%s %s: %v, wrote %v", name, m, b.Ranges[m], l.Ranges[m])
			}
		}
	}
	p2 := filepath.Join(t.TempDir(), "again.json")
	if err := back.Write(p2); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("write -> read -> write changed the bytes")
	}
	// A histogram read back merges like the original.
	h := back.Layers["top_l.0"].Hist.Clone()
	if err := h.Merge(r.Layers["top_l.0"].Hist); err != nil || h.Count() != 2*r.Layers["top_l.0"].Hist.Count() {
		t.Errorf("merging a read histogram: %v", err)
	}
}

// The version 1 fixture (written by rq before digests) and the version 2
// one (before access counts) still read, and are the version 3 document
// without its "tables".
func TestReadVersion1(t *testing.T) {
	small, err := Read(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"testdata/small_v1.json", "testdata/small_v2.json"} {
		r, err := Read(f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Tables != nil {
			t.Errorf("%s: tables %v", f, r.Tables)
		}
		if _, ok := r.TableAccess("emb_l.0"); ok {
			t.Errorf("%s: TableAccess found counts", f)
		}
		r.Tables = small.Tables
		out, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, readSmall(t)) {
			t.Errorf("%s with the tables encodes to\n%s", f, out)
		}
	}
}

// The digest is over the content, not the bytes: reformatting the file
// keeps it valid; and it is what Encode writes.
func TestDigestIsOverContent(t *testing.T) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(readSmall(t)))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	compact, err := json.Marshal(doc) // other whitespace, keys reordered
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse("compact.json", compact)
	if err != nil {
		t.Fatalf("a reformatted file: %v", err)
	}
	d, err := r.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readSmall(t)), `"digest": "`+d+`"`) {
		t.Errorf("digest %s is not the one written", d)
	}
}

// mutate decodes the small file, lets f change it, and encodes it again
// (numbers kept as written).
func mutate(t *testing.T, f func(doc map[string]any)) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readSmall(t)))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// v1 is mutate on the version 1 fixture (written by rq before digests).
func v1(f func(doc map[string]any)) []byte {
	data, err := os.ReadFile("testdata/small_v1.json")
	if err != nil {
		panic(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		panic(err)
	}
	f(doc)
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		panic(err)
	}
	return b
}

func layer(doc map[string]any, name string) map[string]any {
	return doc["layers"].(map[string]any)[name].(map[string]any)
}

func sub(doc map[string]any, name, field string) map[string]any {
	return layer(doc, name)[field].(map[string]any)
}

// tableEdit replaces the first old after the start of table's entry in
// the small file.
func tableEdit(t *testing.T, table, old, new string) []byte {
	t.Helper()
	text := string(readSmall(t))
	i := strings.Index(text, `"tables": {`)
	i += strings.Index(text[i:], `"`+table+`": {`)
	j := strings.Index(text[i:], old)
	if j < 0 {
		t.Fatalf("%q not in table %s", old, table)
	}
	return []byte(text[:i+j] + new + text[i+j+len(old):])
}

func TestReadErrors(t *testing.T) {
	text := string(readSmall(t))
	// replaceIn replaces the first old after the start of layer's entry.
	replaceIn := func(layerName, old, new string) []byte {
		i := strings.Index(text, `"`+layerName+`": {`)
		j := strings.Index(text[i:], old)
		if i < 0 || j < 0 {
			t.Fatalf("%q not in layer %s", old, layerName)
		}
		return []byte(text[:i+j] + new + text[i+j+len(old):])
	}
	cases := []struct {
		name  string
		data  []byte
		layer string // "" for a document-level error
		want  string
	}{
		{"version", []byte(strings.Replace(text, `"version": 3`, `"version": 4`, 1)), "", "version 4: this rq reads ranges versions 1, 2 and 3"},
		{"no version", mutate(t, func(d map[string]any) { delete(d, "version") }), "", `no "version"`},
		{"version not int", []byte(strings.Replace(text, `"version": 3`, `"version": "3"`, 1)), "", "version: got a JSON string, want an integer"},
		{"case-folded key", replaceIn("top_l.0", `"count": 240,`, `"Count": 240,`), "top_l.0", `Count: unknown key: field names are case-sensitive, did you mean "count"?`},
		{"case-folded nested key", replaceIn("top_l.0", `"l2":[`, `"L2":[`), "top_l.0", `ranges.L2: unknown key: field names are case-sensitive, did you mean "l2"?`},
		// Ranges are checked against their own histograms: an l2 range of
		// [0, 1e38] quantized every value to 0 (AUC 0.5, exit 0).
		{"range beyond the data", replaceIn("top_l.2", `"l2":[0,7.451978]`, `"l2":[0,1e38]`), "top_l.2",
			"l2 range [0, 1e+38] is not within the observed values [0, 7.451978] (with 0) widened by the histogram's bin width 0.5"},
		{"range below the data", replaceIn("top_l.0", `"entropy":[-3.3830307,`, `"entropy":[-5,`), "top_l.0",
			"entropy range [-5, 5.011102] is not within the observed values [-3.3830307, 5.011102] (with 0) widened by the histogram's bin width 1"},
		{"range within the data, edited", replaceIn("top_l.2", `"l2":[0,7.451978]`, `"l2":[0,7.4]`), "",
			"edited or corrupted: digest mismatch (the file records sha256:1312f960cd93…, its content hashes to sha256:"},
		{"rows edited", []byte(strings.Replace(text, `"rows": "0:48"`, `"rows": "0:49"`, 1)), "", "edited or corrupted: digest mismatch"},
		{"digest edited", []byte(strings.Replace(text, `"digest": "sha256:1312`, `"digest": "sha256:1313`, 1)), "", "edited or corrupted: digest mismatch"},
		{"digest not a string", mutate(t, func(d map[string]any) { d["digest"] = 1 }), "", "digest: got a JSON number, want a string"},
		{"shard without digest", mutate(t, func(d map[string]any) { delete(d, "digest"); d["shard_count"] = 2; d["shards"] = []int{0} }), "",
			`missing "digest": a calibration shard must carry the digest rq calibrate --shard writes`},
		{"version 1 shard", v1(func(d map[string]any) { d["shard_count"] = 2; d["shards"] = []int{1} }), "",
			"a calibration shard of ranges version 1, which carries no digest: shards are intermediates, re-run rq calibrate --shard with this rq"},
		{"version 1 range beyond the data", v1(func(d map[string]any) {
			sub(d, "top_l.2", "ranges")["l2"] = []any{0, json.Number("1e38")}
		}), "top_l.2", "l2 range [0, 1e+38] is not within the observed values [0, 7.451978]"},
		{"version 1 with a digest", v1(func(d map[string]any) { d["digest"] = "sha256:00" }), "", `"digest" in a version 1 document`},
		{"NaN", replaceIn("bot_l.2", `"max": 3.7790706`, `"max": NaN`), "bot_l.2", "max: line 34, column 14: invalid character 'N'"},
		{"NaN says why", replaceIn("bot_l.2", `"max": 3.7790706`, `"max": NaN`), "bot_l.2", "must be finite"},
		{"Infinity", replaceIn("top_l.2", `"min":[-0.7568025]`, `"min":[-Infinity]`), "top_l.2", "weight.min[0]"},
		{"float32 overflow", replaceIn("top_l.0", `"min": -3.3830307`, `"min": -1e39`), "top_l.0", "min: got a JSON number -1e39, want a number within float32 range"},
		{"missing count", mutate(t, func(d map[string]any) { delete(layer(d, "bot_l.2"), "count") }), "bot_l.2", `missing "count"`},
		{"missing zeros", mutate(t, func(d map[string]any) { delete(layer(d, "bot_l.0"), "zeros") }), "bot_l.0", `missing "zeros"`},
		{"missing bins", mutate(t, func(d map[string]any) { delete(sub(d, "top_l.0", "histogram"), "bins") }), "top_l.0", `missing "histogram.bins"`},
		{"missing l2", mutate(t, func(d map[string]any) { delete(sub(d, "top_l.2", "ranges"), "l2") }), "top_l.2", `missing "ranges.l2"`},
		{"missing weight", mutate(t, func(d map[string]any) { delete(layer(d, "top_l.2"), "weight") }), "top_l.2", `missing "weight"`},
		{"missing layers", mutate(t, func(d map[string]any) { delete(d, "layers") }), "", `missing "layers"`},
		{"layers not an object", mutate(t, func(d map[string]any) { d["layers"] = []int{1} }), "", "layers: got a JSON array, want an object"},
		{"bins not an array", replaceIn("bot_l.0", `"bins":[8,3,16,8,8,3,11,7,7,11,3,11,0,0,0,0]`, `"bins":"x"`), "bot_l.0", "histogram.bins: got a JSON string, want an array of numbers"},
		{"no layers", mutate(t, func(d map[string]any) { d["layers"] = map[string]any{} }), "", "no layers"},
		{"missing sha", mutate(t, func(d map[string]any) { delete(d, "model_sha256") }), "", `missing "model_sha256"`},
		{"bad sha", mutate(t, func(d map[string]any) { d["model_sha256"] = "abc" }), "", `model_sha256 "abc" is not a sha256 digest`},
		{"bad method", mutate(t, func(d map[string]any) { d["method"] = "mse" }), "", `method "mse"`},
		{"bad levels", mutate(t, func(d map[string]any) { d["levels"] = 1 }), "", "levels 1"},
		{"bad percentile", mutate(t, func(d map[string]any) { d["percentile"] = 120 }), "", "percentile 120"},
		{"unknown key", mutate(t, func(d map[string]any) { layer(d, "bot_l.0")["colour"] = 1 }), "bot_l.0", "colour: unknown key"},
		{"unknown top key", mutate(t, func(d map[string]any) { d["Version"] = 1 }), "", "Version: unknown key"},
		{"duplicate key", replaceIn("top_l.0", `"count": 240,`, `"count": 240, "count": 1,`), "top_l.0", "count: duplicate key"},
		{"duplicate layer", []byte(strings.Replace(text, `"top_l.2": {`, `"top_l.0": {`, 1)), "top_l.0", "duplicate key"},
		{"negative count", replaceIn("top_l.0", `"count": 240`, `"count": -240`), "top_l.0", "count: got a JSON number -240, want a non-negative integer"},
		{"count mismatch", replaceIn("top_l.0", `"count": 240`, `"count": 241`), "top_l.0", "histogram counts add up to 240, but count is 241"},
		{"zero count", mutate(t, func(d map[string]any) {
			l := layer(d, "top_l.2")
			l["count"] = 0
			h := l["histogram"].(map[string]any)
			h["bins"] = make([]int, 16)
		}), "top_l.2", "count is 0"},
		{"nonfinite sum", replaceIn("bot_l.0", `"nan": 0`, `"nan": 3`), "bot_l.0", "nonfinite is 0, but nan + posinf + neginf = 3 + 0 + 0"},
		{"bin outside data", replaceIn("bot_l.0", `"bins":[8,3,16,8,8,3,11,7,7,11,3,11,0,0,0,0]`, `"bins":[8,3,16,8,8,3,11,7,7,11,3,10,1,0,0,0]`), "bot_l.0", "bin 12 ([3, 3.5)) counts 1 values, outside [min, max]"},
		{"width", replaceIn("bot_l.0", `"hi":5`, `"hi":6`), "bot_l.0", "bin width (hi-lo)/16 = 0.5625: want a power of two"},
		{"off grid", replaceIn("bot_l.0", `"lo":-3,"hi":5`, `"lo":-3.25,"hi":4.75`), "bot_l.0", "not a multiple of the bin width"},
		{"too few bins", replaceIn("bot_l.0", `"bins":[8,3,16,8,8,3,11,7,7,11,3,11,0,0,0,0]`, `"bins":[96]`), "bot_l.0", "histogram has 1 bins"},
		{"min outside", replaceIn("top_l.2", `"max": 7.451978`, `"max": 9`), "top_l.2", "do not fit the histogram"},
		{"zeros too many", replaceIn("top_l.2", `"zeros": 77`, `"zeros": 86`), "top_l.2", "zeros is 86, but the bin of 0 counts 85"},
		{"range without 0", replaceIn("top_l.0", `"l2":[-3.3830307,5]`, `"l2":[0.5,5]`), "top_l.0", "l2 range [0.5, 5] does not contain 0"},
		{"relu range", replaceIn("top_l.2", `"l2":[0,7.451978]`, `"l2":[-1,7.451978]`), "top_l.2", "l2 range [-1, 7.451978] of a ReLU input does not start at 0"},
		{"range of 3", replaceIn("top_l.2", `"l2":[0,7.451978]`, `"l2":[0,7.451978,8]`), "top_l.2", "ranges.l2 has 3 numbers"},
		{"absmax", replaceIn("top_l.2", `"absmax":[0.8987081]`, `"absmax":[0.9]`), "top_l.2", "output channel 0 are inconsistent"},
		{"weight lengths", replaceIn("top_l.2", `"absmax":[0.8987081]`, `"absmax":[0.8987081,1]`), "top_l.2", "2 absmax, 1 min and 1 max"},
		{"truncated", []byte(text[:strings.Index(text, `"count": 240`)+10]), "top_l.0", "unexpected end of file (truncated?)"},
		{"trailing", []byte(text + "{}"), "", "data after the end of the JSON object"},
		{"empty", []byte{}, "", "empty document"},
		{"array", []byte("[]"), "", "want a JSON object"},
		{"empty layer name", []byte(strings.Replace(text, `"top_l.2": {`, `"": {`, 1)), "", "empty layer name"},
		// Row access counts (version 3): every field checked, errors name
		// the table's JSON path.
		{"tables in version 2", mutate(t, func(d map[string]any) { d["version"] = 2 }), "", `"tables" in a version 2 document`},
		{"hot row beyond the table", tableEdit(t, "emb_l.0", `[4, 9]`, `[5, 9]`), "", `tables["emb_l.0"].hot[4]: row 5, want 0..4`},
		{"hot counts increasing", tableEdit(t, "emb_l.0", `[[0, 10], [1, 10]`, `[[0, 9], [1, 10]`), "", `tables["emb_l.0"].hot[1]: [1, 10] after [0, 9]: want counts non-increasing`},
		{"hot rows of a tie decreasing", tableEdit(t, "emb_l.0", `[[0, 10], [1, 10]`, `[[1, 10], [0, 10]`), "", `tables["emb_l.0"].hot[1]: [0, 10] after [1, 10]`},
		{"hot row twice", tableEdit(t, "emb_l.0", `[3, 9], [4, 9]`, `[4, 10], [0, 8]`), "", `tables["emb_l.0"].hot: row 0 listed twice`},
		{"exact sum below lookups", tableEdit(t, "emb_l.0", `"lookups": 48`, `"lookups": 49`), "", `tables["emb_l.0"]: an exact table's hot counts must add up to its lookups: 48, lookups 49`},
		{"exact sum above lookups", tableEdit(t, "emb_l.0", `"lookups": 48`, `"lookups": 47`), "", `tables["emb_l.0"].hot: the counts (less error_bound 0) add up to more than the 47 lookups`},
		{"exact with a bound", tableEdit(t, "emb_l.0", `"error_bound": 0`, `"error_bound": 2`), "", `tables["emb_l.0"]: exact is true with error_bound 2`},
		{"count below the bound", tableEdit(t, "emb_l.0", `"exact": true,
      "error_bound": 0`, `"exact": false,
      "error_bound": 10`), "", `tables["emb_l.0"].hot[3]: count 9, want at least max(1, error_bound 10)`},
		{"zero count", tableEdit(t, "emb_l.0", `[4, 9]`, `[4, 0]`), "", `tables["emb_l.0"].hot[4]: count 0`},
		{"hot pair of 3", tableEdit(t, "emb_l.0", `[4, 9]`, `[4, 9, 1]`), "", `tables["emb_l.0"].hot: at byte`},
		{"hot negative row", tableEdit(t, "emb_l.0", `[4, 9]`, `[-4, 9]`), "", `tables["emb_l.0"].hot: at byte`},
		{"hot fraction", tableEdit(t, "emb_l.0", `[4, 9]`, `[4, 9.5]`), "", `want a non-negative integer`},
		{"hot not an array", tableEdit(t, "emb_l.0", `"hot": [[0, 10], [1, 10], [2, 10], [3, 9], [4, 9]]`, `"hot": {"a": 1}`), "", `tables["emb_l.0"].hot: at byte 0: want '['`},
		{"hot longer than the table", tableEdit(t, "emb_l.0", `"rows": 5`, `"rows": 4`), "", `tables["emb_l.0"].hot: 5 rows listed, but the table has 4`},
		{"no rows", tableEdit(t, "emb_l.0", `"rows": 5`, `"rows": 0`), "", `tables["emb_l.0"].rows: 0, want at least 1`},
		{"missing hot", mutate(t, func(d map[string]any) { delete(d["tables"].(map[string]any)["emb_l.1"].(map[string]any), "hot") }), "", `tables["emb_l.1"]: missing "hot"`},
		{"null table", mutate(t, func(d map[string]any) { d["tables"].(map[string]any)["emb_l.1"] = nil }), "", `tables["emb_l.1"]: null`},
		{"unknown table key", mutate(t, func(d map[string]any) { d["tables"].(map[string]any)["emb_l.1"].(map[string]any)["Hot"] = 1 }), "", `Hot: unknown key`},
		{"too many hot rows", mutate(t, func(d map[string]any) {
			tb := d["tables"].(map[string]any)["emb_l.1"].(map[string]any)
			hot := make([][2]int, MaxHot+1)
			tb["hot"], tb["rows"] = hot, 1<<20
		}), "", `tables["emb_l.1"].hot: more than 65536 rows`},
		{"counts edited", mutate(t, func(d map[string]any) {
			tb := d["tables"].(map[string]any)["emb_l.1"].(map[string]any)
			tb["lookups"], tb["hot"] = 49, [][2]int{{1, 10}, {2, 10}, {3, 10}, {4, 10}, {0, 9}}
		}), "", "edited or corrupted: digest mismatch"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		p := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Read(p)
		if err == nil {
			t.Errorf("%s: read without error", c.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, p+": ") || !strings.Contains(msg, c.want) {
			t.Errorf("%s: error %q, want it to start with the file and contain %q", c.name, msg, c.want)
		}
		if c.layer != "" && !strings.Contains(msg, `layer "`+c.layer+`"`) {
			t.Errorf("%s: error %q does not name layer %s", c.name, msg, c.layer)
		}
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Layer != c.layer {
			t.Errorf("%s: error %#v, want a *FormatError for layer %q", c.name, err, c.layer)
		}
	}
}

func TestReadFileErrors(t *testing.T) {
	if _, err := Read(filepath.Join(t.TempDir(), "missing.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := Read(big); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestCheck(t *testing.T) {
	r, err := Read(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check(strings.ToUpper(testSHA)); err != nil {
		t.Errorf("same sha in upper case: %v", err)
	}
	other := strings.Repeat("f", 64)
	err = r.Check(other)
	if err == nil {
		t.Fatal("ranges of another model accepted")
	}
	want := "testdata/small.json was calibrated on model sha256 0123456789ab…, this model is ffffffffffff…"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to contain %q", err, want)
	}
}

func TestRangeLookup(t *testing.T) {
	r, err := Read(smallFile)
	if err != nil {
		t.Fatal(err)
	}
	lo, hi, err := r.Range("top_l.0", "")
	if err != nil || lo != -3.3830307 || hi != 5 {
		t.Errorf("default (l2) range of top_l.0: [%v, %v] %v", lo, hi, err)
	}
	if lo, hi, err := r.Range("top_l.2", MethodPercentile); err != nil || lo != 0 || hi != 7.44547 {
		t.Errorf("percentile of top_l.2: [%v, %v] %v", lo, hi, err)
	}
	_, _, err = r.Range("top_l.9", MethodL2)
	if err == nil || !strings.Contains(err.Error(), `no layer "top_l.9"; it has bot_l.0, bot_l.2, top_l.0, top_l.2`) {
		t.Errorf("unknown layer: %v", err)
	}
	if _, _, err := r.Range("top_l.0", "mse"); err == nil || !strings.Contains(err.Error(), "minmax, percentile, l2, entropy") {
		t.Errorf("unknown method: %v", err)
	}
}

func TestCheckNetwork(t *testing.T) {
	r := smallRanges(t, 0)
	if err := r.CheckNetwork(smallNet()); err != nil {
		t.Fatal(err)
	}
	renamed := smallNet()
	renamed.Top[1].Name = "top_l.4"
	if err := r.CheckNetwork(renamed); err == nil || !strings.Contains(err.Error(), `no ranges for layer "top_l.4"`) {
		t.Errorf("renamed layer: %v", err)
	}
	delete(r.Layers, "bot_l.0")
	r.Layers["extra"] = r.Layers["bot_l.2"]
	if err := r.CheckNetwork(smallNet()); err == nil {
		t.Error("missing layer accepted")
	}
	r = smallRanges(t, 0)
	r.Layers["extra"] = r.Layers["bot_l.2"]
	if err := r.CheckNetwork(smallNet()); err == nil || !strings.Contains(err.Error(), `layer "extra": is not a Linear layer`) {
		t.Errorf("extra layer: %v", err)
	}
	r = smallRanges(t, 0)
	r.Layers["top_l.2"].FollowsReLU = false
	if err := r.CheckNetwork(smallNet()); err == nil || !strings.Contains(err.Error(), "follows_relu") {
		t.Errorf("relu flag: %v", err)
	}
}

func TestMerge(t *testing.T) {
	a, b := smallRanges(t, 0), smallRanges(t, 1)
	aBytes, _ := a.Encode()
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// The same as one run over both sets of batches.
	both, err := Run(context.Background(), smallNet(), &sliceReader{append(smallBatches(3, 16, 0), smallBatches(3, 16, 1)...)},
		Options{Bins: 16, ModelSHA256: testSHA})
	if err != nil {
		t.Fatal(err)
	}
	for name, l := range both.Layers {
		if !m.Layers[name].Hist.equal(l.Hist) {
			t.Errorf("%s: merged histogram differs from the joint run's", name)
		}
		for _, meth := range Methods {
			if m.Layers[name].Ranges[meth] != l.Ranges[meth] {
				t.Errorf("%s %s: merged %v, joint %v", name, meth, m.Layers[name].Ranges[meth], l.Ranges[meth])
			}
		}
	}
	if m.Rows != "0:48 + 0:48" || m.Data != "synthetic" {
		t.Errorf("merged rows %q data %q", m.Rows, m.Data)
	}
	if after, _ := a.Encode(); !bytes.Equal(after, aBytes) {
		t.Error("Merge changed its input")
	}
	if _, err := m.Encode(); err != nil {
		t.Errorf("merged document does not encode: %v", err)
	}

	c := smallRanges(t, 1)
	c.ModelSHA256 = strings.Repeat("e", 64)
	if _, err := Merge(a, c); err == nil || !strings.Contains(err.Error(), "different models") {
		t.Errorf("different models: %v", err)
	}
	d := smallRanges(t, 1)
	delete(d.Layers, "top_l.2")
	if _, err := Merge(a, d); err == nil || !strings.Contains(err.Error(), "the layers differ") {
		t.Errorf("different layers: %v", err)
	}
	e := smallRanges(t, 1)
	e.Layers["bot_l.0"].Weight.Max[0] = 0.9
	e.Layers["bot_l.0"].Weight.AbsMax[0] = 0.9
	if _, err := Merge(a, e); err == nil || !strings.Contains(err.Error(), "weight statistics") {
		t.Errorf("different weights: %v", err)
	}
	f, err := Run(context.Background(), smallNet(), &sliceReader{smallBatches(1, 4, 0)}, Options{Bins: 32, ModelSHA256: testSHA})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(a, f); err == nil || !strings.Contains(err.Error(), "32 bins into one of 16") {
		t.Errorf("different bins: %v", err)
	}
}

func TestWriteRefusesInvalid(t *testing.T) {
	r := smallRanges(t, 0)
	r.Layers["top_l.0"].Ranges[MethodL2] = [2]float32{0.5, 1}
	p := filepath.Join(t.TempDir(), "ranges.json")
	if err := r.Write(p); err == nil || !strings.Contains(err.Error(), `layer "top_l.0": l2 range [0.5, 1] does not contain 0`) {
		t.Errorf("invalid write: %v", err)
	}
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused document left a file: %v", err)
	}
	// Encoding is deterministic: the same document twice, the same bytes,
	// with the layers in sorted order.
	r = smallRanges(t, 0)
	a, _ := r.Encode()
	b, _ := r.Encode()
	if !bytes.Equal(a, b) {
		t.Error("two encodings differ")
	}
	names := regexp.MustCompile(`(?m)^    "([^"]+)": \{`).FindAllStringSubmatch(string(a), -1)
	var got []string
	for _, n := range names {
		got = append(got, n[1])
	}
	if strings.Join(got, ",") != "bot_l.0,bot_l.2,top_l.0,top_l.2,emb_l.0,emb_l.1" {
		t.Errorf("layer and table order %v", got)
	}
}

// MaxFileSize against the largest ranges.json rq writes for a real model:
// criteo-18k's 7 FC inputs at the most bins (on all 15,429 training rows
// it is 1,092,366 bytes; the bins dominate, so a few rows give nearly as
// much: 988,707 bytes from 500 rows). The cap must stay well above it.
func TestRangesSizeCriteo(t *testing.T) {
	if testing.Short() {
		t.Skip("calibrates the criteo-18k model")
	}
	net, sha, open := criteo(t, dataset.Range{Start: 0, End: 500})
	r, err := Run(context.Background(), net, open(), Options{Threads: 2, Bins: MaxBins, ModelSHA256: sha, Rows: "0:500", Data: "dlrm-processed.npz"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ranges.json at %d bins: %d bytes (cap %d)", MaxBins, len(out), MaxFileSize)
	if len(out)*16 > MaxFileSize {
		t.Errorf("a real ranges.json is %d bytes, within 16x of MaxFileSize %d", len(out), MaxFileSize)
	}
	if _, err := Parse("criteo.json", out); err != nil {
		t.Fatal(err)
	}
}
