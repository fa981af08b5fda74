package cmd

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/monitor"
	"github.com/rqtools/rq/quantize"
)

// monitorPlan writes the int8 preset's plan (static int8 FC layers) for a model.
func monitorPlan(t *testing.T, modelPath string) string {
	t.Helper()
	m, err := modelio.Load(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := quantize.Preset("int8", m.Net)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "plan.json")
	if err := p.Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

type monitorOut struct {
	Points []struct {
		Snapshot, Window, Verdict, Reason string
		MaxClip                           float64 `json:"max_clip"`
		Drift                             float64
		Production                        struct {
			NEPct float64 `json:"ne_pct"`
		}
		Fresh *struct {
			NEPct float64 `json:"ne_pct"`
		}
	}
	Alerts int
}

func runMonitorJSON(t *testing.T, wantCode int, args ...string) monitorOut {
	t.Helper()
	out, stderr, code := rq(t, append([]string{"monitor", "-q", "--json"}, args...)...)
	if code != wantCode {
		t.Fatalf("monitor: exit %d, want %d: %s", code, wantCode, stderr)
	}
	var mo monitorOut
	if err := json.Unmarshal([]byte(out), &mo); err != nil {
		t.Fatalf("monitor --json: %v\n%s", err, out)
	}
	return mo
}

// TestMonitorWindows: criteo-18k in 7 windows under the production int8
// quantization: every window gets a verdict with a reason, history gets
// one line per point, the plot is drawn.
func TestMonitorWindows(t *testing.T) {
	model, data, ranges := calibrated(t)
	plan := monitorPlan(t, model)
	dir := t.TempDir()
	hist, plot := filepath.Join(dir, "h.jsonl"), filepath.Join(dir, "trend.svg")
	mo := runMonitorJSON(t, 0, "--plan", plan, "--ranges", ranges, "--snapshot", model, "--data", data, "--windows", "7",
		"--history", hist, "--plot", plot)
	if len(mo.Points) != 7 || mo.Alerts != 0 {
		t.Fatalf("got %d points, %d alerts; want 7, 0", len(mo.Points), mo.Alerts)
	}
	for _, p := range mo.Points {
		if p.Verdict != "OK" || p.Reason == "" {
			t.Errorf("window %s: verdict %q reason %q, want OK with a reason", p.Window, p.Verdict, p.Reason)
		}
	}
	b, err := os.ReadFile(hist)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 7 {
		t.Errorf("history has %d lines, want 7", n)
	}
	if s, err := os.ReadFile(plot); err != nil || !bytes.Contains(s, []byte("<svg")) {
		t.Errorf("plot: %v", err)
	}
	// A second run appends.
	runMonitorJSON(t, 0, "--plan", plan, "--ranges", ranges, "--snapshot", model, "--data", data, "--windows", "7", "--history", hist)
	b, _ = os.ReadFile(hist)
	if n := strings.Count(string(b), "\n"); n != 14 {
		t.Errorf("history has %d lines after two runs, want 14", n)
	}
	// The table names every window.
	out, _, code := rq(t, "monitor", "-q", "--plan", plan, "--ranges", ranges, "--snapshot", model, "--data", data, "--windows", "7")
	if code != 0 || !strings.Contains(out, "15428:18000") || !strings.Contains(out, "verdict") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
}

// scaledNPZ copies an npz with X_int (int32, C order) multiplied by factor
// for rows >= from: traffic whose dense features drifted.
func scaledNPZ(t *testing.T, src string, from int, factor int32) string {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	dst := filepath.Join(t.TempDir(), "scaled.npz")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, e := range zr.File {
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if e.Name == "X_int.npy" {
			// npy v1: magic(6) version(2) header length(2, LE) header.
			if len(b) < 10 || b[6] != 1 {
				t.Fatalf("X_int.npy: want npy version 1")
			}
			off := 10 + int(binary.LittleEndian.Uint16(b[8:10]))
			hdr := string(b[10:off])
			if !strings.Contains(hdr, "'<i4'") || !strings.Contains(hdr, "'fortran_order': False") || !strings.Contains(hdr, ", 13)") {
				t.Fatalf("X_int.npy header %q: want <i4, C order, 13 columns", hdr)
			}
			body := b[off:]
			for i := from * 13 * 4; i+4 <= len(body); i += 4 {
				v := int32(binary.LittleEndian.Uint32(body[i:]))
				binary.LittleEndian.PutUint32(body[i:], uint32(v*factor))
			}
		}
		w, err := zw.Create(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestMonitorScaledDense: the dense features of the last three of seven
// windows scaled by 10: those windows say RECALIBRATE (their inputs clip
// and drift), and fresh ranges on the window meet the budget; the first
// four stay OK; rq exits 3.
func TestMonitorScaledDense(t *testing.T) {
	model, data, ranges := calibrated(t)
	plan := monitorPlan(t, model)
	const cut = 10285 // the start of window 5 of 7 over 18000 rows
	scaled := scaledNPZ(t, data, cut, 10)
	mo := runMonitorJSON(t, ExitBudget, "--plan", plan, "--ranges", ranges, "--snapshot", model, "--data", scaled, "--windows", "7")
	if len(mo.Points) != 7 {
		t.Fatalf("got %d points, want 7", len(mo.Points))
	}
	for i, p := range mo.Points {
		t.Logf("%s: ΔNE %+.4f%% clip %.2f%% drift %.3f %s: %s", p.Window, p.Production.NEPct, 100*p.MaxClip, p.Drift, p.Verdict, p.Reason)
		if i < 4 {
			if p.Verdict != string(monitor.OK) {
				t.Errorf("window %s (unscaled): %s, want OK", p.Window, p.Verdict)
			}
			continue
		}
		if p.Verdict != string(monitor.Recalibrate) || p.Fresh == nil || !(p.Fresh.NEPct <= monitor.DefaultMaxNEDelta) {
			t.Errorf("window %s (scaled): %s fresh %+v, want RECALIBRATE with fresh ranges within budget", p.Window, p.Verdict, p.Fresh)
		}
		if !(p.MaxClip > monitor.DefaultMaxClip || p.Drift > monitor.DefaultMaxDrift) || !strings.Contains(p.Reason, "fresh ranges") {
			t.Errorf("window %s: clip %g drift %g reason %q: want drift named and the verification", p.Window, p.MaxClip, p.Drift, p.Reason)
		}
	}
	if mo.Alerts != 3 {
		t.Errorf("%d alerts, want 3", mo.Alerts)
	}
}

func TestMonitorUsage(t *testing.T) {
	cases := [][]string{
		{"monitor", "--ranges", "r", "--snapshot", "m", "--data", "d"},
		{"monitor", "--plan", "p", "--snapshot", "m", "--data", "d"},
		{"monitor", "--plan", "p", "--ranges", "r", "--data", "d"},
		{"monitor", "--plan", "p", "--ranges", "r", "--snapshot", "m"},
		{"monitor", "--plan", "p", "--ranges", "r", "--snapshot", "m", "--snapshots", "x", "--data", "d"},
		{"monitor", "--plan", "p", "--ranges", "r", "--snapshot", "m", "--window", "w", "--data", "d"},
		{"monitor", "--plan", "p", "--ranges", "r", "--snapshot", "m", "--data", "d", "--windows", "0"},
		{"monitor", "--plan", "p", "--ranges", "r", "--snapshot", "m", "--data", "d", "--max-clip", "-1"},
	}
	for _, c := range cases {
		if _, stderr, code := rq(t, c...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d: %s", c, code, ExitUsage, stderr)
		}
	}
}

func TestSnapshotOrder(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for i, name := range []string{"a.pt", "b.safetensors", "c.pt"} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, nil, 0o644)
		// a is newest, c oldest.
		os.Chtimes(p, now, now.Add(-time.Duration(i)*time.Hour))
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644)
	for order, want := range map[string]string{"name": "a.pt b.safetensors c.pt", "mtime": "c.pt b.safetensors a.pt"} {
		files, err := snapshotFiles(&monitorOptions{snapshotDir: dir, order: order})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, filepath.Base(f))
		}
		if strings.Join(got, " ") != want {
			t.Errorf("--order %s: %v, want %s", order, got, want)
		}
	}
}
