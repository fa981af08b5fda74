package cmd

import (
	"bytes"
	"context"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// TestEvalParquet: rq eval of TorchRec's DLRM and DLRM_DCN on the test
// rows of clicks.parquet gives the NE and AUC it gives on the MLPerf-layout
// day holding the same rows (which match the peer's fp32 figures to 5
// decimals), with the dense transform defaulting to none for the file's
// float dense columns; shards merge to the one run.
func TestEvalParquet(t *testing.T) {
	for _, c := range mlperfCases[:2] {
		dir := testshared.Path(t, c.dir)
		m := testshared.Path(t, filepath.Join(c.dir, c.model))
		pq := testshared.Path(t, filepath.Join(c.dir, "clicks.parquet"))
		wantNE, wantAUC := peerFP32(t, testshared.Path(t, filepath.Join(c.dir, c.peer)))
		ml := mlperfEval(t, "--model", m, "--data", dir, "--rows", "15429:16715")
		for _, batch := range []string{"2048", "97"} {
			got := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--batch", batch)
			ne, auc := got["ne"].(float64), got["auc"].(float64)
			t.Logf("%s/%s batch %s: Parquet NE %.7f AUC %.7f; MLPerf layout NE %.7f AUC %.7f; peer %.7f %.7f", c.dir, c.model, batch, ne, auc, ml["ne"], ml["auc"], wantNE, wantAUC)
			if math.Abs(ne-ml["ne"].(float64)) > 1e-9 || auc != ml["auc"] || got["examples"].(float64) != 1286 {
				t.Errorf("%s/%s: Parquet NE %v AUC %v on %v rows, MLPerf layout NE %v AUC %v", c.dir, c.model, ne, auc, got["examples"], ml["ne"], ml["auc"])
			}
			if math.Abs(ne-wantNE) > 5e-6 || math.Abs(auc-wantAUC) > 5e-6 {
				t.Errorf("%s/%s: NE %v AUC %v, peer fp32 NE %v AUC %v", c.dir, c.model, ne, auc, wantNE, wantAUC)
			}
		}
		// --data-format parquet says the same; log1p asked for applies.
		named := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--data-format", "parquet")
		if named["ne"] != ml["ne"] && math.Abs(named["ne"].(float64)-ml["ne"].(float64)) > 1e-9 {
			t.Errorf("--data-format parquet: NE %v", named["ne"])
		}
		logged := mlperfEval(t, "--model", m, "--data", pq, "--rows", "15429:16715", "--dense-transform", "log1p")
		if logged["ne"] == named["ne"] {
			t.Errorf("%s: --dense-transform log1p gives the default's NE", c.model)
		}
	}
}

// TestParquetJaggedPredictions: the multi-hot DLRM_DCN on the multi-hot
// clicks.parquet, whose bags hold 0 to h_k ids (an empty bag pools to
// zeros), gives golden-dcn-jagged's predictions within 1e-5 in batches of
// 1, 97 and 2048.
func TestParquetJaggedPredictions(t *testing.T) {
	const dir = "criteo-torchrec/multi-hot"
	ld, err := modelio.Load(testshared.Path(t, filepath.Join(dir, "dcn.pt")))
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	g, err := modelio.OpenSafetensors(testshared.Path(t, filepath.Join(dir, "golden-dcn-jagged.safetensors")))
	if err != nil {
		t.Fatal(err)
	}
	gt, ok := g.Lookup("pred")
	if !ok {
		t.Fatal("golden-dcn-jagged has no pred")
	}
	want, err := modelio.Float32s(gt)
	g.Close()
	if err != nil {
		t.Fatal(err)
	}
	pq := testshared.Path(t, filepath.Join(dir, "clicks.parquet"))
	for _, batch := range []int{1, 97, 2048} {
		rd, err := dataset.OpenContext(context.Background(), pq, dataset.Options{Rows: dataset.Range{Start: 15429, End: 16715},
			BatchSize: batch, DenseTransform: dataset.None, NumDense: ld.Net.NumDense, TableRows: ld.Net.TableRows()})
		if err != nil {
			t.Fatal(err)
		}
		run := model.NewRunner(ld.Net, 2)
		var got []float32
		empty, long := 0, 0
		for {
			b, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range b.Offsets {
				for i := range b.N {
					switch o[i+1] - o[i] {
					case 0:
						empty++
					case 2, 3:
						long++
					}
				}
			}
			p, err := run.Forward(b)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p...)
		}
		rd.Close()
		if len(got) != len(want) {
			t.Fatalf("batch %d: %d predictions, golden %d", batch, len(got), len(want))
		}
		if empty == 0 || long == 0 {
			t.Fatalf("batch %d: %d empty bags and %d of 2 or 3 ids: the file's bags are not jagged as read", batch, empty, long)
		}
		worst := 0.0
		for i := range got {
			worst = max(worst, math.Abs(float64(got[i])-float64(want[i])))
		}
		t.Logf("batch %d: %d empty bags, %d of 2-3 ids, worst |Δpred| %.3g", batch, empty, long, worst)
		if worst > 1e-5 {
			t.Errorf("batch %d: predictions differ from PyTorch's by up to %g", batch, worst)
		}
	}
	out := mlperfEval(t, "--model", testshared.Path(t, filepath.Join(dir, "dcn.pt")), "--data", pq, "--rows", "15429:16715")
	t.Logf("multi-hot dcn on the jagged Parquet: NE %.7f AUC %.7f", out["ne"], out["auc"])
}

// criteoParquet writes a few rows of the Criteo columns (label, float
// I1..I13, int64 C1..C26) with change applied to the schema and each row
// i (a schema change is the same every time).
func criteoParquet(t *testing.T, change func(g parquet.Group, row map[string]any, i int)) string {
	t.Helper()
	g := parquet.Group{"label": parquet.Int(32)}
	for j := 1; j <= 13; j++ {
		g["I"+strconv.Itoa(j)] = parquet.Leaf(parquet.FloatType)
	}
	for k := 1; k <= 26; k++ {
		g["C"+strconv.Itoa(k)] = parquet.Int(64)
	}
	var rows []map[string]any
	for i := range 5 {
		r := map[string]any{"label": int32(i % 2)}
		for j := 1; j <= 13; j++ {
			r["I"+strconv.Itoa(j)] = float32(j) / 10
		}
		for k := 1; k <= 26; k++ {
			r["C"+strconv.Itoa(k)] = int64(i % 2) // every table has 2 rows
		}
		change(g, r, i)
		rows = append(rows, r)
	}
	var buf bytes.Buffer
	w := parquet.NewWriter(&buf, parquet.NewSchema("clicklog", g), parquet.MaxRowsPerRowGroup(2))
	for _, r := range rows {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "clicks.parquet")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvalParquetHostile: malformed Parquet files end rq eval with exit 1
// and a message naming the file and what is wrong.
func TestEvalParquetHostile(t *testing.T) {
	m := testshared.Path(t, "criteo-torchrec/dcn.pt")
	good := criteoParquet(t, func(parquet.Group, map[string]any, int) {})
	if out := mlperfEval(t, "--model", m, "--data", good); out["examples"].(float64) != 5 {
		t.Fatalf("the good file: %v examples", out["examples"])
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.parquet")
	os.WriteFile(truncated, data[:len(data)*2/3], 0o644)
	noMagic := filepath.Join(t.TempDir(), "clicks")
	os.WriteFile(noMagic, data[:len(data)-3], 0o644)
	cases := []struct {
		name string
		path string
		want []string
	}{
		{"truncated", truncated, []string{truncated, "not a valid Parquet file"}},
		{"missing column", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { delete(g, "C7"); delete(r, "C7") }), []string{`no column "C7" (ids)`}},
		{"string ids", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { g["C3"], r["C3"] = parquet.String(), "a9" }), []string{`column "C3": type`, "want INT32 or INT64 (ids)"}},
		{"string dense", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) { g["I4"], r["I4"] = parquet.String(), "0.5" }), []string{`column "I4": type`, "dense feature"}},
		{"id beyond table", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) {
			if i == 3 {
				r["C5"] = int64(1 << 40)
			}
		}),
			[]string{"row 3 (row group 1, column \"C5\")", "id 1099511627776 is beyond embedding table 4"}},
		{"label", criteoParquet(t, func(g parquet.Group, r map[string]any, i int) {
			if i == 3 {
				r["label"] = int32(7)
			}
		}), []string{"row 3 (row group 1, column \"label\")", "label 7 is not 0 or 1"}},
	}
	for _, c := range cases {
		_, stderr, code := rq(t, "eval", "--model", m, "--data", c.path, "-q")
		if code != 1 {
			t.Errorf("%s: exit %d, want 1: %s", c.name, code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: %q does not say %q", c.name, stderr, w)
			}
		}
	}
	// A damaged file with no .parquet name and its tail cut still goes to
	// the Parquet reader by its magic.
	_, stderr, code := rq(t, "eval", "--model", m, "--data", noMagic, "-q")
	if code != 1 || !strings.Contains(stderr, "Parquet") {
		t.Errorf("cut tail without extension: exit %d: %s", code, stderr)
	}
}

// TestParquetColumnFlags checks --label-col, --dense-cols and --sparse-cols
// parsing apart from behaviour: plain comma lists reach the reader's
// options; counts other than the model's, empty or repeated names, and the
// flags on formats without column names are usage errors naming the flag.
func TestParquetColumnFlags(t *testing.T) {
	tmp := t.TempDir()
	pq := filepath.Join(tmp, "clicks.parquet")
	os.WriteFile(pq, []byte("PAR1"), 0o644)
	parts := filepath.Join(tmp, "parts")
	os.Mkdir(parts, 0o755)
	os.WriteFile(filepath.Join(parts, "part-00000.parquet"), []byte("PAR1"), 0o644)
	day := filepath.Join(tmp, "day")
	os.Mkdir(day, 0o755)
	os.WriteFile(filepath.Join(day, "day_0_dense.npy"), nil, 0o644)
	tsv, npz := filepath.Join("testdata", "hostile", "tiny.tsv"), filepath.Join("testdata", "hostile", "tiny.npz")
	parse := func(args ...string) (*evalOptions, error) {
		var got *evalOptions
		g := &globalOptions{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
		c := newEvalCmd(g, func(_ context.Context, o *evalOptions) error { got = o; return nil })
		c.SetArgs(append([]string{"--model", "m.pt"}, args...))
		return got, c.Execute()
	}
	got, err := parse("--data", pq, "--label-col", "clicked", "--dense-cols", "a, b,c", "--sparse-cols", "x,y")
	if err != nil {
		t.Fatal(err)
	}
	if d := got.data; d.labelCol != "clicked" || d.denseCols != "a, b,c" || d.sparseCols != "x,y" {
		t.Fatalf("parsed %+v", d)
	}
	o, err := got.data.options(3, []int64{5, 5})
	if err != nil || o.Columns.Label != "clicked" || !slices.Equal(o.Columns.Dense, []string{"a", "b", "c"}) || !slices.Equal(o.Columns.Sparse, []string{"x", "y"}) {
		t.Fatalf("options %+v, %v", o.Columns, err)
	}
	// Without the flags, no names: the reader takes Criteo's.
	got, _ = parse("--data", pq)
	if o, err := got.data.options(3, []int64{5, 5}); err != nil || o.Columns.Label != "" || o.Columns.Dense != nil || o.Columns.Sparse != nil {
		t.Fatalf("no flags: %+v, %v", o.Columns, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", pq, "--dense-cols", "a,b"}, "--dense-cols names 2 columns, but the model takes 3 dense inputs"},
		{[]string{"--data", pq, "--sparse-cols", "x,y,z"}, "--sparse-cols names 3 columns, but the model has 2 embedding tables"},
		{[]string{"--data", pq, "--dense-cols", "a,,c"}, "--dense-cols: an empty name"},
		{[]string{"--data", pq, "--sparse-cols", "x,x"}, `--sparse-cols: column "x" is named twice`},
		{[]string{"--data", pq, "--label-col", "x", "--sparse-cols", "x,y"}, `column "x" is named by both --label-col and --sparse-cols`},
		{[]string{"--data", pq, "--label-col", "a,b"}, `--label-col: "a,b" is not one column name`},
		{[]string{"--data", tsv, "--label-col", "y"}, "--label-col: column names apply to Parquet click logs only; --data " + tsv + " is read as tsv"},
		{[]string{"--data", npz, "--dense-cols", "a,b,c"}, "--dense-cols: column names apply to Parquet click logs only; --data " + npz + " is read as npz"},
		{[]string{"--data", day, "--sparse-cols", "x,y", "--label-col", "l"}, "--label-col, --sparse-cols: column names apply to Parquet click logs only"},
		{[]string{"--data", pq, "--data-format", "tsv", "--label-col", "y"}, "is read as tsv"},
	} {
		got, err := parse(c.args...)
		if err == nil {
			_, err = got.data.options(3, []int64{5, 5})
		}
		if err == nil || exitCode(err) != ExitUsage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a usage error saying %q", c.args, err, c.want)
		}
	}
	// A directory of parts and a file forced to Parquet take them.
	for _, args := range [][]string{{"--data", parts}, {"--data", tsv, "--data-format", "parquet"}} {
		got, _ := parse(append(args, "--label-col", "clicked")...)
		if o, err := got.data.options(3, []int64{5, 5}); err != nil || o.Columns.Label != "clicked" {
			t.Errorf("%v: %+v, %v", args, o.Columns, err)
		}
	}
	// Every command reading click logs has them.
	for _, cmd := range []string{"eval", "calibrate", "search", "debug", "monitor"} {
		out, _, _ := rq(t, cmd, "--help")
		for _, f := range []string{"--label-col", "--dense-cols", "--sparse-cols"} {
			if !strings.Contains(out, f) {
				t.Errorf("rq %s --help lacks %s", cmd, f)
			}
		}
	}
}

// TestEvalParquetColumnsAndParts: rq eval of TorchRec's DLRM_DCN on a
// file whose columns have other names, with --label-col, --dense-cols and
// --sparse-cols, gives what the Criteo-named file gives; a missing named
// column exits 1 naming file, column and flag; a directory of two parts
// reads both in name order.
func TestEvalParquetColumnsAndParts(t *testing.T) {
	m := testshared.Path(t, "criteo-torchrec/dcn.pt")
	good := criteoParquet(t, func(parquet.Group, map[string]any, int) {})
	rename := func(name string) string {
		switch {
		case name == "label":
			return "clicked"
		case name[0] == 'I':
			return "z_dense_" + name[1:] // sorts after the ids: another order
		}
		return "cat" + name[1:]
	}
	renamed := criteoParquet(t, func(g parquet.Group, r map[string]any, i int) {
		renamed := map[string]any{}
		for k, v := range r {
			renamed[rename(k)] = v
		}
		clear(r)
		maps.Copy(r, renamed)
		if _, done := g["clicked"]; done { // one schema for every row
			return
		}
		ng := parquet.Group{}
		for k, v := range g {
			ng[rename(k)] = v
		}
		clear(g)
		maps.Copy(g, ng)
	})
	var dense, sparse []string
	for j := 1; j <= 13; j++ {
		dense = append(dense, rename("I"+strconv.Itoa(j)))
	}
	for k := 1; k <= 26; k++ {
		sparse = append(sparse, rename("C"+strconv.Itoa(k)))
	}
	flags := []string{"--label-col", "clicked", "--dense-cols", strings.Join(dense, ","), "--sparse-cols", strings.Join(sparse, ",")}
	want := mlperfEval(t, "--model", m, "--data", good)
	got := mlperfEval(t, append([]string{"--model", m, "--data", renamed}, flags...)...)
	if got["examples"].(float64) != 5 || got["ne"] != want["ne"] || got["auc"] != want["auc"] {
		t.Fatalf("renamed columns: %v examples NE %v AUC %v; Criteo names: NE %v AUC %v", got["examples"], got["ne"], got["auc"], want["ne"], want["auc"])
	}
	bad := append([]string{"eval", "--model", m, "--data", renamed, "-q"}, flags...)
	bad[len(bad)-1] = strings.Replace(bad[len(bad)-1], "cat7,", "cat_seven,", 1)
	_, stderr, code := rq(t, bad...)
	if code != 1 || !strings.Contains(stderr, renamed) || !strings.Contains(stderr, `no column "cat_seven" (ids, named by --sparse-cols)`) {
		t.Fatalf("missing named column: exit %d: %s", code, stderr)
	}

	dir := t.TempDir()
	b, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(dir, "part-00000.parquet"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "part-00001.parquet"), b, 0o644)
	os.WriteFile(filepath.Join(dir, "_SUCCESS"), nil, 0o644)
	both := mlperfEval(t, "--model", m, "--data", dir, "--batch", "3")
	if both["examples"].(float64) != 10 || math.Abs(both["ne"].(float64)-want["ne"].(float64)) > 1e-9 {
		t.Fatalf("two parts: %v examples NE %v, one part NE %v", both["examples"], both["ne"], want["ne"])
	}
	one := mlperfEval(t, "--model", m, "--data", dir, "--rows", "5:10")
	if one["examples"].(float64) != 5 || one["ne"] != want["ne"] {
		t.Fatalf("rows 5:10 of the two parts (the second): %v examples NE %v, want NE %v", one["examples"], one["ne"], want["ne"])
	}
}
