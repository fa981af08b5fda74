package cmd

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

type debugJSON struct {
	Rows       int64
	DeltaNEPct *float64 `json:"delta_ne_pct"`
	Layers     []struct {
		Name     string
		Isolated *struct {
			SQNR *float64 `json:"sqnr_db"`
		}
		Propagated struct {
			SQNR *float64 `json:"sqnr_db"`
		}
	}
	Tables   []struct{ Table string }
	Culprits []struct {
		Layer      string
		DeltaNEPct *float64 `json:"delta_ne_pct"`
		Rule       string
		Suggestion string
	}
	Worst *struct{ Layer string }
}

// TestDebugCriteo debugs the int8 and int8-int4 presets on the criteo-18k
// test rows, then falls the top 3 culprits back to fp32: the ΔNE must drop.
func TestDebugCriteo(t *testing.T) {
	model, data, ranges := calibrated(t)
	dir := t.TempDir()
	m, err := modelio.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for _, preset := range []string{"int8", "int8-int4"} {
		q := filepath.Join(dir, preset+".safetensors")
		if _, stderr, code := rq(t, "quantize", "--model", model, "--preset", preset, "--ranges", ranges, "-o", q); code != 0 {
			t.Fatalf("%s: %s", preset, stderr)
		}
		out, stderr, code := rq(t, "debug", "--model", model, "--quantized", q, "--data", data, "--rows", "15429:16715", "--json")
		if code != 0 {
			t.Fatalf("%s debug: exit %d: %s", preset, code, stderr)
		}
		var d debugJSON
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		// 4 bottom + 26 tables + interaction + 3 top + output; every quantized layer a culprit.
		if d.Rows != 1286 || len(d.Layers) != 35 || len(d.Culprits) != 33 || len(d.Tables) != 26 || d.Worst == nil || d.DeltaNEPct == nil {
			t.Fatalf("%s: rows %d, %d layers, %d culprits, %d tables, worst %v", preset, d.Rows, len(d.Layers), len(d.Culprits), len(d.Tables), d.Worst)
		}
		for i, c := range d.Culprits {
			if c.DeltaNEPct == nil || math.IsNaN(*c.DeltaNEPct) || c.Suggestion == "" || c.Rule == "" {
				t.Errorf("%s culprit %+v: want a finite ΔNE and a suggestion", preset, c)
			} else if i > 0 && *c.DeltaNEPct > *d.Culprits[i-1].DeltaNEPct {
				t.Errorf("%s culprits not sorted at %d", preset, i)
			}
		}
		for _, l := range d.Layers {
			if l.Propagated.SQNR == nil || *l.Propagated.SQNR < 20 {
				t.Errorf("%s %s: propagated SQNR %v, want > 20 dB", preset, l.Name, l.Propagated.SQNR)
			}
		}
		var top []string
		for _, c := range d.Culprits[:3] {
			top = append(top, c.Layer)
			t.Logf("%s culprit %s ΔNE alone %+.4f%% [%s] %s", preset, c.Layer, *c.DeltaNEPct, c.Rule, c.Suggestion)
		}
		// Fall back the top 3 to fp32 and quantize again.
		plan, err := quantize.Preset(preset, m.Net)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range top {
			plan.Layers[n] = quantize.LayerPlan{Precision: precision.FP32}
		}
		planPath, fixed := filepath.Join(dir, preset+"-plan.json"), filepath.Join(dir, preset+"-fixed.safetensors")
		if err := plan.Write(planPath); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := rq(t, "quantize", "--model", model, "--plan", planPath, "--ranges", ranges, "-o", fixed); code != 0 {
			t.Fatal(stderr)
		}
		ev, stderr, code := rq(t, "eval", "--model", fixed, "--baseline", model, "--data", data, "--rows", "15429:16715", "--json")
		if code != 0 {
			t.Fatal(stderr)
		}
		after := evalOut(t, ev).Delta.NEPct
		before := *d.DeltaNEPct
		t.Logf("%s: ΔNE %+.4f%% before, %+.4f%% with %s in fp32 (%.0f%% recovered)", preset, before, after, strings.Join(top, ", "), 100*(before-after)/before)
		// "Most": at least half of the ΔNE is recovered.
		if !(after < before/2) {
			t.Errorf("%s: falling back %v gives ΔNE %+.4f%%, not below half of %+.4f%%", preset, top, after, before)
		}
	}
}

func TestDebugBadInput(t *testing.T) {
	model, data, dir, q := quantizedCriteo(t, "fp16")
	other := filepath.Join(dir, "other.safetensors")
	if _, stderr, code := rq(t, "quantize", "--model", "testdata/shapes/dot.pt", "--preset", "fp16", "-o", other); code != 0 {
		t.Fatal(stderr)
	}
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model", model, "--quantized", model}, ExitError, "not an rq quantized model"},
		{[]string{"--model", q, "--quantized", q}, ExitError, "give the fp32 model"},
		{[]string{"--model", model, "--quantized", other}, ExitError, "is not a quantization of"},
		{[]string{"--model", model, "--quantized", filepath.Join(dir, "missing.safetensors")}, ExitError, "missing.safetensors"},
		{[]string{"--quantized", q}, ExitUsage, "--model is required"},
		{[]string{"--model", model}, ExitUsage, "--quantized is required"},
		{[]string{"--model", model, "--quantized", q, "--top", "-1"}, ExitUsage, "--top"},
	}
	for _, c := range cases {
		args := append([]string{"debug", "--data", data, "--rows", "15429:15500"}, c.args...)
		_, stderr, code := rq(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("rq %v: exit %d, stderr %q; want exit %d naming %q", c.args, code, stderr, c.code, c.want)
		}
	}
	// The table output: every layer and the culprits.
	out, stderr, code := rq(t, "debug", "--model", model, "--quantized", q, "--data", data, "--rows", "15429:15500", "--top", "2")
	if code != 0 || !strings.Contains(out, "top_l.4") || !strings.Contains(out, "culprits") || !strings.Contains(out, "2 of 33") {
		t.Errorf("table: exit %d %s\n%s", code, stderr, out)
	}
}

// TestDebugHTML: --html writes a self-contained page with every section,
// alongside the usual table output; a missing directory fails up front.
func TestDebugHTML(t *testing.T) {
	model, data, dir, q := quantizedCriteo(t, "fp16")
	page := filepath.Join(dir, "report.html")
	out, stderr, code := rq(t, "debug", "--model", model, "--quantized", q, "--data", data, "--rows", "15429:15600", "--html", page)
	if code != 0 || !strings.Contains(out, "culprits") {
		t.Fatalf("exit %d: %s\n%s", code, stderr, out)
	}
	b, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"<!DOCTYPE html>", "SQNR per layer", "Worst tensor", "Culprits", "Layers", "Table row errors", "emb_l.25", "top_l.4", "<svg"} {
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", page, want)
		}
	}
	if strings.Count(s, "<svg") != 2 || strings.Contains(strings.ReplaceAll(s, "http://www.w3.org/2000/svg", ""), "http") {
		t.Errorf("%s: want 2 inline SVG charts and no external references", page)
	}
	bad := filepath.Join(dir, "missing", "report.html")
	_, stderr, code = rq(t, "debug", "--model", model, "--quantized", q, "--data", data, "--rows", "15429:15500", "--html", bad)
	if code == 0 || !strings.Contains(stderr, "missing") {
		t.Errorf("--html into a missing directory: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Errorf("%s written despite the error", bad)
	}
}
