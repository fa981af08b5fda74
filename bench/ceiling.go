package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Ceiling is a peer's figure for one GEMM kernel at one shape and thread
// count, in the kernel's unit (GOPS, or GFLOPS for the float kernels).
type Ceiling struct {
	GOPS float64
	Name string // what the peer ran, e.g. "oneDNN matmul bf16"
	// Note says why there is no figure when the peer has a counterpart
	// but could not give one honestly (it ran another thread count).
	Note string
}

// CeilingFunc gives the ceiling of a kernel at a shape and thread count. A
// zero Ceiling means the peer has no counterpart; an error (the peer
// failed, or printed something that is not its line) ends the run.
type CeilingFunc func(kernel string, s Shape, threads int) (Ceiling, error)

// The oneDNN peers rq bench --ceiling runs. Both take "M N K" and print one
// line; they are told apart by that line, not by their file names.
const (
	// PeerMatmul is ../shared/bench/onednn_matmul.cpp: oneDNN's matmul
	// primitive (the path frameworks take; AMX tiles where the CPU has
	// them), "M=.. N=.. K=.. int8 X GOPS bf16 Y GFLOPS fp32 Z GFLOPS".
	PeerMatmul = "onednn_matmul"
	// PeerGemm is ../shared/bench/onednn_gemm.c, the older peer: oneDNN's
	// BLAS-like u8s8s32 and sgemm calls, "M=.. N=.. K=.. int8 X GOPS fp32 Y
	// GFLOPS ratio R".
	PeerGemm = "onednn_gemm"
)

var (
	matmulLine = regexp.MustCompile(`^M=(\d+) N=(\d+) K=(\d+) int8 (\d+(?:\.\d+)?) GOPS bf16 (\d+(?:\.\d+)?) GFLOPS fp32 (\d+(?:\.\d+)?) GFLOPS$`)
	gemmLine   = regexp.MustCompile(`^M=(\d+) N=(\d+) K=(\d+) int8 (\d+(?:\.\d+)?) GOPS fp32 (\d+(?:\.\d+)?) GFLOPS ratio (\d+(?:\.\d+)?)$`)
	// runtimeLine is oneDNN's verbose header naming its threading runtime
	// and the threads it will use, e.g.
	// "onednn_verbose,info,cpu,runtime:OpenMP,nthr:1" (v2.x and v3.x).
	runtimeLine = regexp.MustCompile(`_verbose,info,cpu,runtime:([^,]*),nthr:(\d+)`)
)

// ceilingColumn is the peer's column a kernel is compared with: "int8"
// for the int8 GEMMs (static or dynamic activations: oneDNN's u8 x s8),
// "bf16" for bf16, "fp32" for fp32 and fp16 (whose math is fp32: the
// weights are widened on the fly); "" for kernels with no counterpart.
func ceilingColumn(kernel string) string {
	switch kernel {
	case "gemm-int8", "gemm-int8-dynamic":
		return "int8"
	case "gemm-bf16":
		return "bf16"
	case "gemm-fp32", "gemm-fp16":
		return "fp32"
	}
	return ""
}

// HasCeiling reports whether --ceiling gives kernel a figure.
func HasCeiling(kernel string) bool { return ceilingColumn(kernel) != "" }

// peerFigures is one line of a peer: its kind and its columns (bf16 is 0
// from onednn_gemm, which has none).
type peerFigures struct {
	kind          string
	i8, bf16, f32 float64
}

// column returns the figure and its name for a column of ceilingColumn.
// onednn_gemm has no bf16 column: bf16 rows get its sgemm, as they always
// have (bf16's math is fp32 multiply-adds).
func (f peerFigures) column(col string) (float64, string) {
	if f.kind == PeerGemm {
		if col == "int8" {
			return f.i8, "oneDNN u8s8s32"
		}
		return f.f32, "oneDNN sgemm"
	}
	switch col {
	case "int8":
		return f.i8, "oneDNN matmul int8"
	case "bf16":
		return f.bf16, "oneDNN matmul bf16"
	}
	return f.f32, "oneDNN matmul fp32"
}

// threadCheck is what oneDNN's verbose header said for a thread count.
type threadCheck struct {
	checked bool // the header was seen
	nthr    int
	runtime string
}

// Peer runs a oneDNN peer binary (PeerMatmul or PeerGemm) for each shape
// and thread count on first use, and gives each GEMM kernel its column.
//
// Threads: both peers are linked against libdnnl, whose OpenMP runtime
// (Debian's build) takes its thread count from OMP_NUM_THREADS, which is set
// per run. A oneDNN built with another runtime ignores it (TBB, the
// thread pool) or runs one thread (sequential), so for onednn_matmul a probe
// run with ONEDNN_VERBOSE=1 reads the runtime and thread count oneDNN reports
// and is stopped there; rows at a thread count it does not run get a Note
// instead of a figure measured at another. onednn_gemm's BLAS-like calls
// print no verbose header, so its thread count is taken on trust, as before.
type Peer struct {
	ctx    context.Context
	binary string

	mu      sync.Mutex
	kind    string
	figs    map[peerKey]peerFigures
	threads map[int]threadCheck
}

type peerKey struct{ m, n, k, t int }

// NewPeer returns the peer at binary; nothing runs until Ceiling is called.
func NewPeer(ctx context.Context, binary string) *Peer {
	return &Peer{ctx: ctx, binary: binary, figs: map[peerKey]peerFigures{}, threads: map[int]threadCheck{}}
}

// Kind is PeerMatmul or PeerGemm once the peer has printed a line, else "".
func (p *Peer) Kind() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.kind
}

// Ceiling is a CeilingFunc.
func (p *Peer) Ceiling(kernel string, s Shape, threads int) (Ceiling, error) {
	col := ceilingColumn(kernel)
	if col == "" {
		return Ceiling{}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// Once the peer is known to be onednn_matmul, a thread count it does
	// not run is found out before any measurement at it.
	if p.kind == PeerMatmul {
		if note, err := p.threadNote(threads); err != nil || note != "" {
			_, name := peerFigures{kind: p.kind}.column(col)
			return Ceiling{Name: name, Note: note}, err
		}
	}
	k := peerKey{s.M, s.N, s.K, threads}
	f, ok := p.figs[k]
	if !ok {
		var err error
		if f, err = p.measure(s, threads); err != nil {
			return Ceiling{}, err
		}
		p.figs[k] = f
	}
	v, name := f.column(col)
	if f.kind == PeerMatmul {
		if note, err := p.threadNote(threads); err != nil || note != "" {
			return Ceiling{Name: name, Note: note}, err
		}
	}
	if v <= 0 {
		return Ceiling{Name: name, Note: "the peer's figure rounds to 0.0"}, nil
	}
	return Ceiling{GOPS: v, Name: name}, nil
}

// threadNote is "" when oneDNN runs threads threads (or does not say),
// else why the rows at that count have no ceiling; the probe runs once per
// count.
func (p *Peer) threadNote(threads int) (string, error) {
	tc, ok := p.threads[threads]
	if !ok {
		var err error
		if tc, err = p.probeThreads(threads); err != nil {
			return "", err
		}
		p.threads[threads] = tc
	}
	if tc.checked && tc.nthr != threads {
		return fmt.Sprintf("oneDNN (runtime %s) ran %d threads with OMP_NUM_THREADS=%d, so it has no figure for %d", tc.runtime, tc.nthr, threads, threads), nil
	}
	return "", nil
}

// waitDelay bounds the wait for a killed peer's output to close: a child
// it left behind (a shell's) may hold it open.
const waitDelay = 2 * time.Second

// peerEnv is the environment of a peer run: ours, with the thread count
// set and oneDNN's verbose output as asked (off for measurements, which a
// line per call would both flood and slow down).
func peerEnv(threads int, verbose bool) []string {
	v := "0"
	if verbose {
		v = "1"
	}
	return append(os.Environ(), fmt.Sprintf("OMP_NUM_THREADS=%d", threads), "ONEDNN_VERBOSE="+v, "DNNL_VERBOSE="+v)
}

// tail keeps the last max bytes written to it (and counts them all), so a
// peer that prints without end costs bounded memory and its last line, the
// one that matters, is still there.
type tail struct {
	max int
	b   []byte
	n   int64
}

func (t *tail) Write(p []byte) (int, error) {
	t.n += int64(len(p))
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

// lastLine is the last non-empty line of what t kept.
func (t *tail) lastLine() string {
	lines := strings.Split(strings.TrimRight(string(t.b), "\r\n\t "), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// quoteLine quotes a peer's line for a message, cut to a readable length.
func quoteLine(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}

// measure runs the peer at one shape and thread count and parses its line.
func (p *Peer) measure(s Shape, threads int) (peerFigures, error) {
	args := []string{strconv.Itoa(s.M), strconv.Itoa(s.N), strconv.Itoa(s.K)}
	what := fmt.Sprintf("ceiling peer %s %s (OMP_NUM_THREADS=%d)", p.binary, strings.Join(args, " "), threads)
	cmd := exec.CommandContext(p.ctx, p.binary, args...)
	cmd.Env = peerEnv(threads, false)
	cmd.WaitDelay = waitDelay
	out, errOut := &tail{max: 4 << 10}, &tail{max: 2 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Run(); err != nil {
		if cerr := p.ctx.Err(); cerr != nil {
			return peerFigures{}, cerr
		}
		msg := fmt.Sprintf("%s: %v", what, err)
		if l := out.lastLine(); l != "" {
			msg += "; its last line: " + quoteLine(l)
		}
		if l := errOut.lastLine(); l != "" {
			msg += "; stderr: " + quoteLine(l)
		}
		return peerFigures{}, errors.New(msg)
	}
	line := out.lastLine()
	f, dims, err := parsePeerLine(line)
	if err != nil {
		return peerFigures{}, fmt.Errorf("%s printed %s: %v", what, quoteLine(line), err)
	}
	if dims != [3]int{s.M, s.N, s.K} {
		return peerFigures{}, fmt.Errorf("%s printed %s: that is M=%d N=%d K=%d, not the shape asked", what, quoteLine(line), dims[0], dims[1], dims[2])
	}
	if p.kind != "" && p.kind != f.kind {
		return peerFigures{}, fmt.Errorf("%s printed %s, %s's line, after printing %s's", what, quoteLine(line), f.kind, p.kind)
	}
	p.kind = f.kind
	return f, nil
}

// parsePeerLine reads either peer's line: its kind, figures and sizes.
func parsePeerLine(line string) (peerFigures, [3]int, error) {
	var dims [3]int
	var f peerFigures
	var figs [3]string // int8, bf16, fp32
	m := matmulLine.FindStringSubmatch(line)
	if m != nil {
		f.kind, figs = PeerMatmul, [3]string{m[4], m[5], m[6]}
	} else if m = gemmLine.FindStringSubmatch(line); m != nil {
		f.kind, figs = PeerGemm, [3]string{m[4], "0", m[5]} // no bf16 column
	} else {
		return f, dims, fmt.Errorf("not a oneDNN peer's line (%s: \"M=.. N=.. K=.. int8 X GOPS bf16 Y GFLOPS fp32 Z GFLOPS\"; %s: \"M=.. N=.. K=.. int8 X GOPS fp32 Y GFLOPS ratio R\")", PeerMatmul, PeerGemm)
	}
	for i := range dims {
		v, err := strconv.Atoi(m[1+i])
		if err != nil {
			return f, dims, fmt.Errorf("size %q: %v", m[1+i], err)
		}
		dims[i] = v
	}
	vals := [3]*float64{&f.i8, &f.bf16, &f.f32}
	for i, s := range figs {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return f, dims, fmt.Errorf("figure %q: %v", s, err)
		}
		*vals[i] = v
	}
	return f, dims, nil
}

// probeThreads runs onednn_matmul at a small shape with oneDNN's verbose
// output on, reads (boundedly) up to its runtime header, and stops it: the
// header is printed before the first primitive runs, so the probe takes
// milliseconds. A peer that prints no header (verbose compiled out) is
// unchecked, not refused.
func (p *Peer) probeThreads(threads int) (threadCheck, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.binary, "16", "16", "16")
	cmd.Env = peerEnv(threads, true)
	cmd.WaitDelay = waitDelay
	cmd.Stderr = &tail{max: 1 << 10}
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return threadCheck{}, err
	}
	if err := cmd.Start(); err != nil {
		return threadCheck{}, fmt.Errorf("ceiling peer %s (thread probe, OMP_NUM_THREADS=%d): %v", p.binary, threads, err)
	}
	var tc threadCheck
	sc := bufio.NewScanner(pipe)
	sc.Buffer(make([]byte, 0, 4<<10), 16<<10)
	for n := 0; n < 64 && sc.Scan(); n++ {
		if m := runtimeLine.FindStringSubmatch(sc.Text()); m != nil {
			nthr, err := strconv.Atoi(m[2])
			if err == nil {
				tc = threadCheck{checked: true, nthr: nthr, runtime: m[1]}
			}
			break
		}
	}
	cancel()
	_ = cmd.Wait() // killed on purpose, or done: the measurement runs judge the peer
	if err := p.ctx.Err(); err != nil {
		return threadCheck{}, err
	}
	return tc, nil
}
