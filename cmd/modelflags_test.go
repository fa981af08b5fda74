package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/modelio"
	"github.com/spf13/cobra"
)

// shapesModel writes testdata/shapes/dot.pt (13-32-8 bottom, 5 tables of
// width 8, 23-24-1 top) as a safetensors file in a fresh directory, with
// edit applied to its fp32 tensors first. The input is never modified.
func shapesModel(t *testing.T, edit func(name string, v []float32)) string {
	t.Helper()
	m, err := modelio.Load("testdata/shapes/dot.pt")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var ts []modelio.Tensor
	for i := range m.Tensors {
		tn := &m.Tensors[i]
		v, err := modelio.Float32s(tn)
		if err != nil {
			t.Fatal(err)
		}
		edit(tn.Name, v)
		ts = append(ts, modelio.F32Tensor(tn.Name, tn.Shape, v))
	}
	p := filepath.Join(t.TempDir(), "m.safetensors")
	if err := modelio.WriteSafetensors(p, modelio.TensorsSpec(ts), nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantAll(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s: %q does not mention %q", what, s, w)
		}
	}
}

// TestNonFiniteFC: a NaN in an FC weight is refused, naming the file,
// tensor and index, by every command that loads a model; --allow-nonfinite
// lets eval (NaN metrics) and quantize (as before, with a warning) go on,
// and inspect shows the model with a warning.
func TestNonFiniteFC(t *testing.T) {
	// top_l.2.weight is [1 24]: element 5 is row 0, col 5. The last layer,
	// so that every prediction is NaN whatever ReLU does with NaN.
	model := shapesModel(t, func(name string, v []float32) {
		if name == "top_l.2.weight" {
			v[5] = float32(math.NaN())
		}
	})
	data := "testdata/shapes/data.npz"
	dir := t.TempDir()
	q := filepath.Join(dir, "q.safetensors")
	where := []string{model, `"top_l.2.weight"`, "element 5 (row 0, col 5", "NaN"}
	// rq monitor reads its plan and ranges before the snapshots.
	plan := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(plan, []byte(`{"version": 1, "layers": {"emb_l.0": {"precision": "int8"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ranges := filepath.Join(dir, "ranges.json")
	if _, stderr, code := rq(t, "calibrate", "--model", shapesModel(t, func(string, []float32) {}), "--data", data, "-o", ranges); code != 0 {
		t.Fatalf("calibrate the clean model: %s", stderr)
	}
	for _, args := range [][]string{
		{"eval", "--model", model, "--data", data},
		{"calibrate", "--model", model, "--data", data, "-o", filepath.Join(dir, "r.json")},
		{"quantize", "--model", model, "--preset", "int8-dynamic", "-o", q},
		{"search", "--model", model, "--data", data, "--max-ne-delta", "1", "-o", filepath.Join(dir, "plan.json")},
		{"debug", "--model", model, "--quantized", "testdata/demo/model.safetensors", "--data", data},
		{"monitor", "--snapshot", model, "--plan", plan, "--ranges", ranges, "--data", data},
	} {
		_, stderr, code := rq(t, args...)
		if code != ExitError {
			t.Errorf("%s: exit %d, want %d (%s)", args[0], code, ExitError, stderr)
		}
		wantAll(t, args[0], stderr, where...)
	}
	if _, err := os.Stat(q); !os.IsNotExist(err) {
		t.Errorf("quantize wrote %s: %v", q, err)
	}

	out, stderr, code := rq(t, "eval", "--model", model, "--data", data, "--json", "--allow-nonfinite")
	if code != ExitOK {
		t.Fatalf("eval --allow-nonfinite: exit %d: %s", code, stderr)
	}
	var rep struct {
		Examples int      `json:"examples"`
		NE       *float64 `json:"ne"`
		AUC      *float64 `json:"auc"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Examples != 600 || rep.NE != nil || rep.AUC != nil {
		t.Errorf("eval --allow-nonfinite: %s", out)
	}
	wantAll(t, "eval --allow-nonfinite", stderr, append(where, "600 of 600 predictions are not finite")...)

	if _, stderr, code := rq(t, "quantize", "--model", model, "--preset", "int8-dynamic", "-o", q, "--allow-nonfinite"); code != ExitOK {
		t.Errorf("quantize --allow-nonfinite: exit %d: %s", code, stderr)
	} else {
		wantAll(t, "quantize --allow-nonfinite", stderr, append(where, "warning")...)
	}
	if _, stderr, code := rq(t, "inspect", model); code != ExitOK {
		t.Errorf("inspect: exit %d: %s", code, stderr)
	} else {
		wantAll(t, "inspect", stderr, append(where, "warning")...)
	}
	if _, stderr, code := rq(t, "eval", "--model", model, "--data", data, "--allow-nonfinite", "--state-out", filepath.Join(dir, "s.json")); code != ExitUsage {
		t.Errorf("--allow-nonfinite with --state-out: exit %d: %s", code, stderr)
	}
}

// TestNonFiniteTable: a table row is checked where rq reads every row
// (quantize), and otherwise diagnosed when a prediction comes out NaN (eval).
func TestNonFiniteTable(t *testing.T) {
	data := "testdata/shapes/data.npz"
	// The row of emb_l.2 that data row 0 looks up.
	rd, err := dataset.Open(data, dataset.Options{BatchSize: 1, NumDense: 13, TableRows: []int64{7, 50, 300, 3, 20}, Rows: dataset.Range{Start: 0, End: -1}, DenseTransform: dataset.Log1p})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rd.Next()
	rd.Close()
	if err != nil {
		t.Fatal(err)
	}
	row := b.Indices[2][0]
	model := shapesModel(t, func(name string, v []float32) {
		if name == "emb_l.2.weight" {
			v[8*row+3] = float32(math.Inf(-1))
		}
	})
	dir := t.TempDir()
	q := filepath.Join(dir, "q.safetensors")
	_, stderr, code := rq(t, "quantize", "--model", model, "--preset", "int8-dynamic", "-o", q)
	if code != ExitError {
		t.Errorf("quantize: exit %d: %s", code, stderr)
	}
	wantAll(t, "quantize", stderr, model, `"emb_l.2.weight"`, fmt.Sprintf("row %d holds -Inf (column 3)", row), "--allow-nonfinite")
	if _, err := os.Stat(q); !os.IsNotExist(err) {
		t.Errorf("quantize wrote %s: %v", q, err)
	}
	// Tables int8, FC layers fp32: int8 FC layers would turn the NaN
	// activations into finite codes, leaving no NaN to diagnose.
	plan := filepath.Join(dir, "plan.json")
	if err := os.WriteFile(plan, []byte(`{"version": 1, "layers": {"emb_l.2": {"precision": "int8"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = rq(t, "quantize", "--model", model, "--plan", plan, "-o", q, "--allow-nonfinite")
	if code != ExitOK {
		t.Errorf("quantize --allow-nonfinite: exit %d: %s", code, stderr)
	}
	wantAll(t, "quantize --allow-nonfinite", stderr, "warning", `"emb_l.2.weight"`, fmt.Sprintf("row %d", row))

	_, stderr, code = rq(t, "eval", "--model", model, "--data", data)
	if code != ExitError {
		t.Errorf("eval: exit %d: %s", code, stderr)
	}
	wantAll(t, "eval", stderr, model, "prediction for data row 0 is NaN", fmt.Sprintf(`table tensor "emb_l.2.weight" row %d`, row), "-Inf at column 3")
	out, stderr, code := rq(t, "eval", "--model", model, "--data", data, "--allow-nonfinite", "--json")
	if code != ExitOK || !strings.Contains(out, `"ne": null`) {
		t.Errorf("eval --allow-nonfinite: exit %d: %s %s", code, out, stderr)
	}
	// The quantized file written under --allow-nonfinite holds that row's
	// NaN scale; its eval is diagnosed the same way.
	_, stderr, code = rq(t, "eval", "--model", q, "--data", data)
	if code != ExitError {
		t.Errorf("eval of the quantized file: exit %d: %s", code, stderr)
	}
	wantAll(t, "eval of the quantized file", stderr, q, "data row 0", fmt.Sprintf(`"emb_l.2.weight" row %d`, row))
}

// TestInteractionFlag: a width that fits two interactions needs
// --interaction; a value that does not fit names the width it needs.
func TestInteractionFlag(t *testing.T) {
	// 13-2 bottom, 3 tables of width 2: dot and cat both give 2 + 6 = 8.
	var ts []modelio.Tensor
	f := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%5) * 0.1
		}
		ts = append(ts, modelio.F32Tensor(name, shape, v))
	}
	f("bot_l.0.weight", 2, 13)
	f("bot_l.0.bias", 2)
	for k := range 3 {
		f(fmt.Sprintf("emb_l.%d.weight", k), 10, 2)
	}
	f("top_l.0.weight", 1, 8)
	f("top_l.0.bias", 1)
	p := filepath.Join(t.TempDir(), "amb.safetensors")
	if err := modelio.WriteSafetensors(p, modelio.TensorsSpec(ts), nil); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := rq(t, "inspect", p)
	if code != ExitError {
		t.Errorf("ambiguous: exit %d", code)
	}
	wantAll(t, "ambiguous", stderr, p, "top_l.0.weight", "dot and cat", "--interaction dot|cat")
	for _, op := range []string{"dot", "cat"} {
		out, stderr, code := rq(t, "inspect", p, "--interaction", op, "--json")
		if code != ExitOK || !strings.Contains(out, `"interaction": "`+op+`"`) {
			t.Errorf("--interaction %s: exit %d: %s %s", op, code, out, stderr)
		}
	}
	_, stderr, code = rq(t, "inspect", p, "--interaction", "dot-self")
	if code != ExitError {
		t.Errorf("--interaction dot-self: exit %d", code)
	}
	wantAll(t, "--interaction dot-self", stderr, "takes 8 inputs", "needs 12")
	// rq quantize records the chosen interaction; the quantized file then
	// needs no flag, and a flag that contradicts it is an error.
	q := filepath.Join(t.TempDir(), "q.safetensors")
	if _, stderr, code := rq(t, "quantize", "--model", p, "--interaction", "cat", "--preset", "int8-dynamic", "-o", q); code != ExitOK {
		t.Fatalf("quantize --interaction cat: exit %d: %s", code, stderr)
	}
	if out, stderr, code := rq(t, "inspect", q, "--json"); code != ExitOK || !strings.Contains(out, `"interaction": "cat"`) {
		t.Errorf("inspect the quantized cat model: exit %d: %s %s", code, out, stderr)
	}
	_, stderr, code = rq(t, "inspect", q, "--interaction", "dot")
	if code != ExitError {
		t.Errorf("quantized cat model with --interaction dot: exit %d", code)
	}
	wantAll(t, "quantized cat model with --interaction dot", stderr, q, "records the cat interaction")

	_, stderr, code = rq(t, "eval", "--model", p, "--data", "x.npz", "--interaction", "sum")
	if code != ExitUsage {
		t.Errorf("--interaction sum: exit %d", code)
	}
	wantAll(t, "--interaction sum", stderr, "dot, dot-self, cat", `"sum"`)
}

// TestModelFlagsParse checks the model flags' parsing apart from loading:
// they land in each command's options struct, their values are checked in
// RunE (usage errors, the run function never called), and only the
// commands whose policy allows it have --allow-nonfinite.
func TestModelFlagsParse(t *testing.T) {
	g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	var got *evalOptions
	run := func(args ...string) error {
		got = nil
		c := newEvalCmd(g, func(_ context.Context, o *evalOptions) error { got = o; return nil })
		c.SetArgs(args)
		c.SilenceErrors, c.SilenceUsage = true, true
		return c.Execute()
	}
	if err := run("--model", "m.pt", "--data", "d.npz", "--interaction", "cat", "--allow-nonfinite"); err != nil {
		t.Fatal(err)
	}
	if got.models.interaction != "cat" || !got.models.allowNonFinite || got.models.policy != allowableNonFinite || got.models.g != g {
		t.Errorf("parsed %+v", got.models)
	}
	for _, bad := range [][]string{
		{"--model", "m.pt", "--data", "d.npz", "--interaction", "triangle"},
		{"--model", "m.pt", "--data", "d.npz", "--allow-nonfinite", "--state-out", "s.json"},
	} {
		err := run(bad...)
		if exitCode(err) != ExitUsage || got != nil {
			t.Errorf("%q: err %v (ran: %v), want a usage error before the run", bad, err, got != nil)
		}
	}
	var ins *inspectOptions
	c := newInspectCmd(g, func(_ context.Context, o *inspectOptions) error { ins = o; return nil })
	if c.Flags().Lookup("allow-nonfinite") != nil {
		t.Error("inspect has --allow-nonfinite; it reports non-finite weights and never refuses them")
	}
	c.SetArgs([]string{"m.pt", "--interaction", "dot-self"})
	if err := c.Execute(); err != nil || ins.models.interaction != "dot-self" || ins.models.policy != reportNonFinite {
		t.Errorf("inspect: %v %+v", err, ins)
	}
	for _, mk := range []func() *cobra.Command{
		func() *cobra.Command { return newCalibrateCmd(g, nil) },
		func() *cobra.Command { return newSearchCmd(g, nil) },
		func() *cobra.Command { return newDebugCmd(g, nil) },
		func() *cobra.Command { return newMonitorCmd(g, nil) },
	} {
		c := mk()
		if c.Flags().Lookup("interaction") == nil || c.Flags().Lookup("allow-nonfinite") != nil {
			t.Errorf("rq %s: want --interaction and no --allow-nonfinite (its policy refuses)", c.Name())
		}
	}
}
