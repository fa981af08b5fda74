package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/quantize"
)

// TestEveryCommandTorchRec runs the workflow a user runs, command by
// command, on TorchRec's DLRM and DLRM_DCN: one-hot rows in MLPerf's
// layout and as Parquet, and the multi-hot DCN on Parquet bags of varying
// length. Calibrate, quantize with static int8 (the cross layers too),
// eval against the fp32 model with a budget, debug, and monitor on two
// windows: each exits 0 and its output names the cross layers where the
// model has them, the ones that make DCN different.
func TestEveryCommandTorchRec(t *testing.T) {
	root := testshared.Path(t, "criteo-torchrec")
	cases := []struct {
		name, model, data string
		cross             bool
	}{
		{"dcn-mlperf", "dcn.pt", ".", true},
		{"dlrm-parquet", "dlrm.safetensors", "clicks.parquet", false},
		{"multi-hot-dcn-parquet", "multi-hot/dcn.pt", "multi-hot/clicks.parquet", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, data := filepath.Join(root, c.model), filepath.Join(root, c.data)
			tmp := t.TempDir()
			ranges, plan, q := filepath.Join(tmp, "ranges.json"), filepath.Join(tmp, "plan.json"), filepath.Join(tmp, "q.safetensors")
			must := func(args ...string) string {
				t.Helper()
				out, stderr, code := rq(t, args...)
				if code != ExitOK {
					t.Fatalf("rq %s: exit %d: %s", strings.Join(args, " "), code, stderr)
				}
				return out
			}
			must("calibrate", "--model", src, "--data", data, "--rows", "0:4000", "-o", ranges, "--quiet")
			must("quantize", "--model", src, "--preset", "int8", "--ranges", ranges, "-o", q, "--quiet")

			// eval with a budget against the fp32 model on the test rows.
			e := evalOut(t, must("eval", "--model", q, "--baseline", src, "--data", data, "--rows", "15429:16715", "--max-ne-delta", "1", "--json", "--quiet"))
			if e.Pass == nil || !*e.Pass || e.Delta == nil || e.Bytes*2 > e.BaselineBytes {
				t.Errorf("eval: pass %v, delta %+v, %d bytes of %d", e.Pass, e.Delta, e.Bytes, e.BaselineBytes)
			}

			// debug: every cross layer is reported and measured.
			out := must("debug", "--model", src, "--quantized", q, "--data", data, "--rows", "15429:16715", "--json", "--quiet")
			var rep struct {
				Layers []struct {
					Name, Kind, Precision string
				} `json:"layers"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("debug --json: %v", err)
			}
			crossSeen := 0
			for _, l := range rep.Layers {
				if strings.Contains(l.Name, "crossnet") {
					crossSeen++
					if !strings.HasPrefix(l.Precision, "int8") {
						t.Errorf("debug: cross layer %s at %s, want int8 (preset int8 quantizes it)", l.Name, l.Precision)
					}
				}
			}
			if want := map[bool]int{true: 6, false: 0}[c.cross]; crossSeen != want {
				t.Errorf("debug reports %d cross layers, want %d", crossSeen, want)
			}

			// monitor: the preset's plan, two windows of the test rows.
			m, err := modelio.Load(src)
			if err != nil {
				t.Fatal(err)
			}
			p, err := quantize.Preset("int8", m.Net)
			m.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(plan, p.Encode(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, stderr, code := rq(t, "monitor", "--plan", plan, "--ranges", ranges, "--snapshot", src, "--data", data, "--rows", "15429:16715", "--windows", "2", "--max-ne-delta", "1", "--max-drift", "1", "--max-clip", "1", "--json", "--quiet")
			if code != ExitOK {
				t.Fatalf("monitor: exit %d: %s", code, stderr)
			}
			if c.cross && !strings.Contains(out, "inter_arch.crossnet.V_kernels.0") {
				t.Errorf("monitor's drift does not name the cross layers:\n%.2000s", out)
			}
			var mon struct {
				Points []json.RawMessage `json:"points"`
			}
			if err := json.Unmarshal([]byte(out), &mon); err != nil || len(mon.Points) != 2 {
				t.Errorf("monitor --json: %d points, %v:\n%.1000s", len(mon.Points), err, out)
			}
		})
	}
}
