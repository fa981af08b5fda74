package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/search"
)

func sharedFile(t *testing.T, name string) string {
	t.Helper()
	return testshared.Path(t, filepath.Join("criteo-18k", name))
}

// quantizedCriteo quantizes the criteo-18k model with a preset into a
// fresh temporary directory: the model, its data, the directory and the
// quantized file.
func quantizedCriteo(t *testing.T, preset string) (model, data, dir, q string) {
	t.Helper()
	model, data = sharedFile(t, "dlrm-criteo.pt"), sharedFile(t, "dlrm-processed.npz")
	dir = t.TempDir()
	q = filepath.Join(dir, "q.safetensors")
	if _, stderr, code := rq(t, "quantize", "--model", model, "--preset", preset, "-o", q); code != 0 {
		t.Fatal(stderr)
	}
	return model, data, dir, q
}

// rq runs the command line in-process and returns stdout, stderr and the exit code.
func rq(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestEvalFlags checks flag parsing apart from behaviour.
func TestEvalFlags(t *testing.T) {
	var got *evalOptions
	g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	c := newEvalCmd(g, func(_ context.Context, o *evalOptions) error { got = o; return nil })
	c.SetArgs([]string{"--model", "m.pt", "--data", "d.npz", "--rows", "5:10", "--baseline", "b.pt", "--json",
		"--batch", "64", "--threads", "3", "--dense-transform", "none", "--bad-rows", "skip", "--data-format", "tsv"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	d := got.data
	if got.model != "m.pt" || got.baseline != "b.pt" || !got.json || d.path != "d.npz" || d.rows != "5:10" ||
		d.batch != 64 || d.threads != 3 || d.denseTransform != "none" || d.badRows != "skip" || d.format != "tsv" {
		t.Errorf("parsed %+v data %+v", got, d)
	}
	o, err := d.options(13, []int64{5})
	if err != nil || o.Rows.Start != 5 || o.Rows.End != 10 || o.BatchSize != 64 {
		t.Errorf("options %+v, %v", o, err)
	}
}

func TestUsageErrors(t *testing.T) {
	cases := [][]string{
		{"eval", "--bogus"},
		{"eval", "--data", "x.npz"}, // no --model
		{"eval", "--model", "m", "--data", "d", "--rows", "9:3"},
		{"eval", "--model", "m", "--data", "d", "--bad-rows", "maybe"},
		{"eval", "--model", "m", "--data", "d", "--dense-transform", "sqrt"},
		{"eval", "--model", "m", "--data", "d", "--batch", "0"},
		{"eval", "--model", "m", "--data", "d", "--shard", "2/2"},
		{"eval", "--model", "m", "--data", "d", "--shard", "half"},
		{"merge"},
		{"inspect"},
		{"frobnicate"},
	}
	for _, args := range cases {
		// Usage errors must be found before any file is touched, so
		// nonexistent model paths are fine here except where parsing
		// needs the model; those go through runEval and the model error
		// would be exit 1, so they get the demo's real model.
		if args[0] == "eval" && len(args) > 3 && args[1] == "--model" {
			args[2] = filepath.Join("testdata", "demo", "model.safetensors")
		}
		_, stderr, code := rq(t, args...)
		if code != ExitUsage {
			t.Errorf("rq %v: exit %d (stderr %q), want %d", args, code, stderr, ExitUsage)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.HasPrefix(stderr, "rq: ") {
			t.Errorf("rq %v: stderr %q is not one 'rq: ...' line", args, stderr)
		}
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"eval", "--help"}} {
		out, _, code := rq(t, args...)
		if code != 0 || !strings.Contains(out, "3  an accuracy budget was broken") {
			t.Errorf("rq %v: exit %d, help lacks exit codes:\n%s", args, code, out)
		}
	}
	out, _, code := rq(t, "--version")
	if code != 0 || !strings.Contains(out, "rq version") {
		t.Errorf("--version: %d %q", code, out)
	}
}

// TestEvalReference is the must-show: PyTorch's NE and AUC on the
// criteo-18k test rows, from both model files, as one JSON object.
func TestEvalReference(t *testing.T) {
	data := sharedFile(t, "dlrm-processed.npz")
	for _, m := range []string{"dlrm-criteo.pt", "model.safetensors"} {
		out, stderr, code := rq(t, "eval", "--model", sharedFile(t, m), "--data", data, "--rows", "15429:16715", "--json", "--quiet")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", m, code, stderr)
		}
		var r map[string]any
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%s: %v\n%s", m, err, out)
		}
		if dec.More() {
			t.Errorf("%s: more than one JSON value on stdout", m)
		}
		for _, k := range []string{"examples", "ctr", "ne", "logloss", "auc", "calibration", "examples_per_sec"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: JSON lacks %q", m, k)
			}
		}
		if r["examples"].(float64) != 1286 || math.Abs(r["ne"].(float64)-0.91134) > 5e-6 || math.Abs(r["auc"].(float64)-0.70535) > 5e-6 {
			t.Errorf("%s: examples %v ne %v auc %v, want 1286 0.91134 0.70535", m, r["examples"], r["ne"], r["auc"])
		}
	}
}

func TestEvalBaseline(t *testing.T) {
	out, stderr, code := rq(t, "eval", "--model", sharedFile(t, "model.safetensors"), "--baseline", sharedFile(t, "dlrm-criteo.pt"),
		"--data", sharedFile(t, "dlrm-processed.npz"), "--rows", "15429:16715", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		NE       float64
		Baseline *struct{ NE, AUC float64 }
		Delta    *struct {
			NEPct float64 `json:"ne_pct"`
			AUC   float64
		}
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// The same weights in two formats: identical results.
	if r.Baseline == nil || r.Delta == nil || r.Baseline.NE != r.NE || r.Delta.NEPct != 0 || r.Delta.AUC != 0 {
		t.Errorf("baseline %+v delta %+v", r.Baseline, r.Delta)
	}
}

func TestEvalTSV(t *testing.T) {
	out, stderr, code := rq(t, "eval", "--model", sharedFile(t, "model.safetensors"), "--data", sharedFile(t, "criteo-18k.tsv"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Examples int64
		NE, AUC  float64
		LogLoss  float64
		CTR      float64
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	// The TSV's hashed ids differ from the npz's, so only sanity: all rows, a
	// finite NE near 1 and an AUC in (0.4, 1).
	if r.Examples != 18000 || !(r.NE > 0.5 && r.NE < 2) || !(r.AUC > 0.4 && r.AUC < 1) {
		t.Errorf("TSV eval: %+v", r)
	}
}

// TestBadInput checks corrupt models, malformed rows and mismatched data give
// exit 1 with one clear line naming the file.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	model := sharedFile(t, "model.safetensors")
	data := sharedFile(t, "dlrm-processed.npz")
	raw, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.safetensors")
	os.WriteFile(truncated, raw[:len(raw)/2], 0o644)
	garbage := filepath.Join(dir, "garbage.pt")
	os.WriteFile(garbage, []byte("PK\x03\x04 this is not a zip"), 0o644)
	badTSV := filepath.Join(dir, "bad.tsv")
	os.WriteFile(badTSV, []byte("0\t1\t2\n1\tx\n"), 0o644)
	narrow := filepath.Join(dir, "narrow.tsv")
	os.WriteFile(narrow, []byte(strings.Repeat("0\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\t11\t12\t13\t"+strings.Repeat("a\t", 40)+"\n", 1)), 0o644)
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"eval", "--model", truncated, "--data", data}, []string{"truncated.safetensors"}},
		{[]string{"eval", "--model", garbage, "--data", data}, []string{"garbage.pt"}},
		{[]string{"eval", "--model", filepath.Join(dir, "missing.pt"), "--data", data}, []string{"missing.pt"}},
		{[]string{"eval", "--model", model, "--data", badTSV, "--data-format", "tsv"}, []string{"bad.tsv:2"}},
		{[]string{"eval", "--model", model, "--data", narrow, "--data-format", "tsv"}, []string{"narrow.tsv:1"}},
		{[]string{"eval", "--model", model, "--data", data, "--rows", "17000:19000"}, []string{"18000"}},
		{[]string{"inspect", truncated}, []string{"truncated.safetensors"}},
	}
	for _, c := range cases {
		_, stderr, code := rq(t, c.args...)
		if code != ExitError {
			t.Errorf("rq %v: exit %d, want 1 (stderr %q)", c.args, code, stderr)
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || strings.Contains(stderr, "panic") {
			t.Errorf("rq %v: stderr is not one line: %q", c.args, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("rq %v: stderr %q does not mention %q", c.args, stderr, w)
			}
		}
	}
}

func TestInspect(t *testing.T) {
	out, stderr, code := rq(t, "inspect", sharedFile(t, "dlrm-criteo.pt"), "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Format, Scheme, Interaction string
		DenseInputs                 int `json:"dense_inputs"`
		Tables                      int
		BottomMLP                   []int `json:"bottom_mlp"`
		TopMLP                      []int `json:"top_mlp"`
		Params, Bytes               int64
		Layers                      []struct{ Name string }
		Meta                        map[string]any
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Format != "pytorch" || r.Interaction != "dot" || r.DenseInputs != 13 || r.Tables != 26 ||
		len(r.BottomMLP) != 5 || r.BottomMLP[4] != 16 || len(r.TopMLP) != 4 || r.TopMLP[0] != 367 || len(r.Layers) != 33 {
		t.Errorf("inspect: %+v", r)
	}
	if r.Bytes != 4*r.Params || r.Layers[0].Name != "bot_l.0" {
		t.Errorf("bytes %d params %d first layer %s", r.Bytes, r.Params, r.Layers[0].Name)
	}
	if _, ok := r.Meta["nepochs"]; !ok {
		t.Errorf("checkpoint metadata lacks nepochs: %v", r.Meta)
	}
	tbl, _, code := rq(t, "inspect", sharedFile(t, "model.safetensors"))
	if code != 0 || !strings.Contains(tbl, "emb_l.25") || !strings.Contains(tbl, "interaction dot") {
		t.Errorf("inspect table:\n%s", tbl)
	}
}

func TestDemo(t *testing.T) {
	out, stderr, code := rq(t, "demo", "--json", "--threads", "1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rows []struct {
		Model      string
		NE, AUC    float64
		NEDeltaPct float64 `json:"ne_delta_pct"`
		Bytes      int64
		Holdout    *struct {
			Rows    int
			DeltaNE struct{ Point, Lo, Hi float64 } `json:"delta_ne_pct"`
			Verdict string
			Bytes   int64
		}
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(rows) != 2+len(demoPresets) || rows[0].Model != "fp32" || math.Abs(rows[0].NE-0.91134) > 5e-6 || math.Abs(rows[0].AUC-0.70535) > 5e-6 {
		t.Fatalf("demo: %+v", rows)
	}
	// Every plan costs fewer bytes and no more than 0.2% NE. The bound
	// below is looser: on this briefly trained model some low-precision
	// FC layers improve NE on the 1,286 evaluation rows (the search's
	// plan, MX FC layers among them, gives -0.52%, interval [-1.02,
	// +0.008]); a plan far beyond that would be a broken evaluation.
	for _, r := range rows[1:] {
		if r.NEDeltaPct > 0.2 || r.NEDeltaPct < -1 || r.Bytes >= rows[0].Bytes {
			t.Errorf("demo %s: ΔNE %+.4f%%, %d bytes (fp32 %d)", r.Model, r.NEDeltaPct, r.Bytes, rows[0].Bytes)
		}
	}
	// The searched plan, and only it, is judged on the 1,285 validation
	// rows, with a verdict that follows its interval.
	for i, r := range rows {
		h := r.Holdout
		if (h != nil) != (i == len(rows)-1) {
			t.Errorf("demo %s: holdout %+v", r.Model, h)
			continue
		}
		if h == nil {
			continue
		}
		d := h.DeltaNE
		want := map[bool]string{true: "pass", false: "fail"}[d.Point <= demoBudget]
		if d.Hi > demoBudget && d.Point <= demoBudget {
			want = "inconclusive"
		}
		if h.Rows != 1285 || h.Bytes != r.Bytes || d.Lo > d.Point || d.Hi < d.Point || h.Verdict != want {
			t.Errorf("demo holdout %+v, want 1285 rows, %d bytes, verdict %s", h, r.Bytes, want)
		}
	}
}

// TestOtherShapes evaluates DLRM checkpoints of other shapes than
// criteo-18k, with and without the diagonal in the interaction, one a plain
// state dict and one a dlrm --save-model dict, against PyTorch's NE and AUC
// (testdata/shapes/gen.py made them with torch_peer.py's reference model).
func TestOtherShapes(t *testing.T) {
	raw, err := os.ReadFile("testdata/shapes/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct{ NE, AUC, LogLoss float64 }
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		out, stderr, code := rq(t, "eval", "--model", "testdata/shapes/"+name, "--data", "testdata/shapes/data.npz", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		var got struct{ NE, AUC, LogLoss float64 }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if math.Abs(got.NE-w.NE) > 1e-5*w.NE || math.Abs(got.AUC-w.AUC) > 1e-5 {
			t.Errorf("%s: NE %.6f AUC %.6f, PyTorch %.6f %.6f", name, got.NE, got.AUC, w.NE, w.AUC)
		}
		info, _, _ := rq(t, "inspect", "testdata/shapes/"+name)
		wantOp := map[string]string{"dot.pt": "interaction dot;", "itself.pt": "interaction dot-self;"}[name]
		if !strings.Contains(info, wantOp) {
			t.Errorf("%s: inspect does not say %q:\n%s", name, wantOp, info)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	var got *benchOptions
	g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	c := newBenchCmd(g, func(_ context.Context, o *benchOptions) error { got = o; return nil })
	c.SetArgs([]string{"--kernel", "gemm-fp32", "--shapes", "2048,512,512; 1,2,3", "--threads", "1,2", "--ceiling", "/x/onednn_gemm", "--json"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if len(got.kernels) != 1 || len(got.threads) != 2 || got.ceiling != "/x/onednn_gemm" || !got.json {
		t.Errorf("parsed %+v", got)
	}
	s, err := parseShapes(got.shapes)
	if err != nil || len(s) != 2 || s[0].M != 2048 || s[1].K != 3 {
		t.Errorf("shapes %+v %v", s, err)
	}
	for _, bad := range []string{"1,2", "1,2,x", "0,1,1", "1,1,1;"} {
		if _, err := parseShapes(bad); exitCode(err) != ExitUsage {
			t.Errorf("parseShapes(%q): %v", bad, err)
		}
	}
	for _, args := range [][]string{{"bench", "--kernel", "nope"}, {"bench", "--threads", "0"}} {
		if _, stderr, code := rq(t, args...); code != ExitUsage {
			t.Errorf("rq %v: exit %d %s", args, code, stderr)
		}
	}
	out, stderr, code := rq(t, "bench", "--kernel", "gemm-fp32", "--shapes", "16,16,16", "--min-time", "1ms", "--trials", "1", "--json")
	var rs []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 1 || rs[0]["kernel"] != "gemm-fp32" || rs[0]["gops"].(float64) <= 0 {
		t.Errorf("bench json: exit %d %s\n%s", code, stderr, out)
	}
}

// TestSearchHelpNamesLadders: rq search's help spells out the default
// ladders, so it must follow search.DefaultLadders: the FC ladder word for
// word, and every table rung (mixed rungs by their share) in order.
func TestSearchHelpNamesLadders(t *testing.T) {
	out, _, code := rq(t, "search", "--help")
	if code != 0 {
		t.Fatalf("rq search --help: exit %d", code)
	}
	help := strings.Join(strings.Fields(out), " ")
	l := search.DefaultLadders(false)
	if fc := "FC layers " + strings.Join(l.FC, " -> "); !strings.Contains(help, fc) {
		t.Errorf("help does not name the FC ladder %q:\n%s", fc, out)
	}
	at := strings.Index(help, "Ladders: tables")
	if at < 0 {
		t.Fatalf("help has no 'Ladders: tables':\n%s", out)
	}
	rest := help[at:]
	for _, r := range l.Table {
		name := r
		if i := strings.LastIndex(r, "@"); i > 0 && !strings.Contains(rest, r) {
			name = r[i:] // "-> @0.02" after the first rung of a run
		}
		i := strings.Index(rest, name)
		if i < 0 {
			t.Fatalf("help's table ladder lacks %s (or lists it out of order), DefaultLadders %v:\n%s", r, l.Table, out)
		}
		rest = rest[i+len(name):]
	}
}
