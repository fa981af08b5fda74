package search

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/kernels"
)

// xeon is a machine with AVX-512 kernels, the base the tests vary.
func xeon() CostMachine {
	return CostMachine{CPU: "Intel(R) Xeon(R) Platinum 8480+", Arch: "amd64", Features: "avx512f avx512bw avx512vl avx512vnni avx512bf16 avx2 fma f16c",
		Impls: map[string]string{"gemm-fp32": "avx512", "gemm-fp16": "avx512", "gemm-bf16": "avx512bf16", "gemm-int8": "avx512vnni", "bag": "avx512"}}
}

// with returns m with the implementation of family f set to impl.
func with(m CostMachine, f, impl string) CostMachine {
	m.Impls = maps.Clone(m.Impls)
	m.Impls[f] = impl
	return m
}

var costLayers = []Layer{{Name: "bot_l.0", Kind: KindFC, In: 8, Out: 4}, {Name: "emb.0", Kind: KindTable, Rows: 100, Dim: 4}}

// TestCostMachineKey: the cache file differs when any part of the machine
// does (each family's implementation, the CPU, its features, the
// architecture), and not when the implementations are listed in another
// order.
func TestCostMachineKey(t *testing.T) {
	o := CostOptions{Batch: 2048, Threads: 1}
	base := xeon()
	variants := map[string]CostMachine{"base": base}
	for f := range base.Impls {
		variants[f+" go"] = with(base, f, "go")
	}
	variants["gemm-int8 amx"] = with(base, "gemm-int8", "amx")
	variants["gemm-bf16 amx"] = with(base, "gemm-bf16", "amx")
	variants["new family"] = with(base, "gemm-mxfp8", "avx512")
	variants["all go"] = CostMachine{CPU: base.CPU, Arch: base.Arch, Features: base.Features, Impls: map[string]string{}}
	for f := range base.Impls {
		variants["all go"].Impls[f] = "go"
	}
	m := base
	m.CPU = "AMD EPYC 9654"
	variants["cpu"] = m
	m = base
	m.Features = "avx2 fma f16c"
	variants["features"] = m
	m = base
	m.Arch = "arm64"
	variants["arch"] = m
	seen := map[string]string{}
	for name, v := range variants {
		f := costFile("/c", v, o, costLayers)
		if other, ok := seen[f]; ok {
			t.Errorf("%s and %s share the cache file %s", name, other, f)
		}
		seen[f] = name
	}
	// Same machine, implementations inserted in the reverse order.
	re := CostMachine{CPU: base.CPU, Arch: base.Arch, Features: base.Features, Impls: map[string]string{}}
	for _, f := range []string{"bag", "gemm-int8", "gemm-bf16", "gemm-fp16", "gemm-fp32"} {
		re.Impls[f] = base.Impls[f]
	}
	if costFile("/c", re, o, costLayers) != costFile("/c", base, o, costLayers) {
		t.Error("the same machine has two cache files")
	}
	// The options and shapes still count.
	if costFile("/c", base, CostOptions{Batch: 2048, Threads: 2}, costLayers) == costFile("/c", base, o, costLayers) ||
		costFile("/c", base, o, costLayers[:1]) == costFile("/c", base, o, costLayers) {
		t.Error("threads or layer shapes do not change the cache file")
	}
}

// fullModel is a complete cost model for layers on m with every figure v.
func fullModel(layers []Layer, o CostOptions, m CostMachine, v float64) *CostModel {
	c := &CostModel{Version: costVersion, Machine: m, Batch: o.Batch, Threads: o.Threads, GEMM: map[string]float64{}, Bags: map[string]float64{}}
	for _, l := range layers {
		if l.Kind == KindTable {
			for _, f := range allTableFormats {
				c.Bags[bagKey(f, l.Rows, l.Dim)] = v
			}
			continue
		}
		for _, k := range allFCKernels {
			c.GEMM[gemmKey(k, o.Batch, l.Out, l.In)] = v
		}
	}
	return c
}

// TestCostCacheMachine: a model cached under one implementation set is not
// reused under another, not even when its file is found at the other's
// path; and an old-format (version 1), damaged, unknown-keyed or
// incomplete cache is measured again, not misread.
func TestCostCacheMachine(t *testing.T) {
	dir := t.TempDir()
	o := CostOptions{Batch: 16, Threads: 1, CacheDir: dir}
	measured := 0
	measure := func(_ context.Context, layers []Layer, o CostOptions, m CostMachine) (*CostModel, error) {
		measured++
		return fullModel(layers, o, m, float64(measured)), nil
	}
	a, b := xeon(), with(xeon(), "gemm-int8", "amx")
	load := func(m CostMachine, wantMeasured int, what string) *CostModel {
		t.Helper()
		c, err := loadOrMeasureCost(context.Background(), costLayers, o, m, measure)
		if err != nil {
			t.Fatal(err)
		}
		if measured != wantMeasured {
			t.Errorf("%s: %d measurements, want %d", what, measured, wantMeasured)
		}
		if c.Machine.key() != m.key() {
			t.Errorf("%s: model of machine %s used on %s", what, c.Machine.key(), m.key())
		}
		return c
	}
	load(a, 1, "first load")
	if c := load(a, 1, "same machine again"); c.GEMM[gemmKey("gemm-int8", 16, 4, 8)] != 1 {
		t.Errorf("cached figure %v, want 1", c.GEMM[gemmKey("gemm-int8", 16, 4, 8)])
	}
	load(b, 2, "int8 on AMX")
	load(a, 2, "back to VNNI")

	pathA, pathB := costFile(dir, a, o, costLayers), costFile(dir, b, o, costLayers)
	dataA, err := os.ReadFile(pathA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pathB, dataA, 0o644); err != nil {
		t.Fatal(err)
	}
	load(b, 3, "VNNI's model at AMX's path")

	n := 3
	for name, doc := range map[string]string{
		"version 1": `{"version": 1, "cpu_features": "` + a.Features + `", "batch": 16, "threads": 1, "gemm": {"gemm-fp32 16x4x8": 9}, "bags": {"fp32 100 4": 9}}`,
		"damaged":   string(dataA[:len(dataA)/2]),
		"unknown":   strings.Replace(string(dataA), `"batch"`, `"cpu_features": "x", "batch"`, 1),
		"twice":     strings.Replace(string(dataA), `"batch": 16`, `"batch": 16, "batch": 16`, 1),
		"bf16 gone": strings.Replace(string(dataA), `"gemm-bf16 16x4x8"`, `"gemm-bf17 16x4x8"`, 1),
		"zero":      strings.Replace(string(dataA), `"gemm-bf16 16x4x8": 1`, `"gemm-bf16 16x4x8": 0`, 1),
	} {
		if doc == string(dataA) {
			t.Fatalf("%s: the edit did not apply to\n%s", name, dataA)
		}
		if err := os.WriteFile(pathA, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
		load(a, n, name)
		var again CostModel // the re-measured model replaced the file
		if err := strictjson.ReadFile(pathA, &again, costOptions); err != nil || again.Machine.key() != a.key() || !again.complete(costLayers) {
			t.Errorf("%s: cache after re-measuring: %v", name, err)
		}
	}
}

// TestCostThisMachine: the machine of this binary names every family the
// cost model measures, and a purego build (all "go") has another key than
// a SIMD build on the same CPU.
func TestCostThisMachine(t *testing.T) {
	m := ThisMachine()
	want := map[string]string{"gemm-fp32": kernels.SgemmImpl(), "gemm-fp16": kernels.F16GemmImpl(), "gemm-bf16": kernels.BF16GemmImpl(),
		"gemm-int8": kernels.I8GemmImpl(), "bag": kernels.BagImpl(), "bag-mx": kernels.MXBagImpl(), "bag-mixed": kernels.MixedBagImpl()}
	if !maps.Equal(m.Impls, want) || m.Features != kernels.Features() || m.Arch != runtime.GOARCH {
		t.Errorf("machine %+v, want implementations %v", m, want)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" && m.CPU == "" {
		t.Error("no CPU model name from /proc/cpuinfo")
	}
	allGo := CostMachine{CPU: m.CPU, Arch: m.Arch, Features: m.Features, Impls: map[string]string{}}
	simd := false
	for f, impl := range m.Impls {
		allGo.Impls[f] = "go"
		simd = simd || impl != "go"
	}
	o := CostOptions{Batch: 2048, Threads: 1}
	same := costFile("/c", m, o, costLayers) == costFile("/c", allGo, o, costLayers)
	switch {
	case puregoBuild && (simd || !same):
		t.Errorf("purego build: implementations %v, key equal to all-go %v", m.Impls, same)
	case !puregoBuild && simd && same:
		t.Errorf("SIMD implementations %v share the purego build's key", m.Impls)
	case !puregoBuild && !simd:
		t.Logf("this CPU (%s) has no SIMD kernel: its key is the purego build's, rightly", m.Features)
	}
	if !puregoBuild && runtime.GOARCH == "amd64" && strings.Contains(m.Features, "avx2") && strings.Contains(m.Features, "fma") && !simd {
		t.Errorf("AVX2+FMA CPU but every implementation is go: %v", m.Impls)
	}
}

// TestCostMeasured: a real (tiny) measurement records this machine, is
// cached strictly readable, and is read back rather than measured again.
func TestCostMeasured(t *testing.T) {
	dir := t.TempDir()
	o := CostOptions{Batch: 16, Threads: 1, CacheDir: dir, MinTime: time.Millisecond}
	c, err := LoadOrMeasureCost(context.Background(), costLayers, o)
	if err != nil {
		t.Fatal(err)
	}
	if c.Machine.key() != ThisMachine().key() || !c.complete(costLayers) {
		t.Fatalf("measured %+v", c)
	}
	var disk CostModel
	if err := strictjson.ReadFile(costFile(dir, ThisMachine(), CostOptions{Batch: 16, Threads: 1}, costLayers), &disk, costOptions); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "cost-*.json"))
	if len(files) != 1 {
		t.Errorf("cache files %v", files)
	}
	again, err := loadOrMeasureCost(context.Background(), costLayers, o, ThisMachine(),
		func(context.Context, []Layer, CostOptions, CostMachine) (*CostModel, error) {
			t.Error("measured again with the cache in place")
			return c, nil
		})
	if err != nil || !maps.Equal(again.GEMM, c.GEMM) || !maps.Equal(again.Bags, c.Bags) {
		t.Errorf("read back %+v %v", again, err)
	}
}
