package evaluate

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rqtools/rq/internal/atomicfile"
	"github.com/rqtools/rq/internal/strictjson"
	"github.com/rqtools/rq/metrics"
)

// StateKind and StateVersion identify an evaluation state file. Version 2
// added the digest; version 1 states are refused (see ParseState).
const (
	StateKind    = "rq-eval-state"
	StateVersion = 2
)

// StateMaxBytes caps a state file. Its size is dominated by the prediction
// histograms: at most 2^22 bins each (metrics' 65,536 pages of 64), about
// 17 bytes a bin as JSON, so some 72 MB for the model and as much for the
// baseline when every bin is occupied; an evaluation of the criteo-18k
// test rows writes 60 KB.
const StateMaxBytes = 256 << 20

// MaxShardCount bounds the shard count of a state that is read: each shard
// is a run of rq eval, and a hostile count would make listing the missing
// ones endless.
const MaxShardCount = 1 << 20

// stateMaxOther caps a state's size outside its score bins: file names,
// digests, counts and the shard list, kilobytes in practice (a state merged
// from a million shards lists them in 7 MB). Decoded token by token, the
// rest of a hostile state at StateMaxBytes would cost seconds and
// gigabytes (a shard list of 128 M zeros, a 250 MB file name).
const stateMaxOther = 16 << 20

var stateOptions = strictjson.Options{Kind: "evaluation state", Versions: []int{StateVersion}, MaxBytes: StateMaxBytes,
	Unsupported: map[int]string{1: "version 1 states carry no digest: evaluation states are short-lived intermediates, re-run rq eval --state-out with this rq"}}

// State is an evaluation of some shards of a row selection, written out so
// evaluations run apart (rq eval --shard I/N --state-out F) can be merged
// (rq merge) into exactly the figures of one run over all the rows.
type State struct {
	Kind           string `json:"kind"`
	Version        int    `json:"version"`
	Model          string `json:"model"`
	ModelSHA256    string `json:"model_sha256"`
	Baseline       string `json:"baseline,omitempty"`
	BaselineSHA256 string `json:"baseline_sha256,omitempty"`
	Data           string `json:"data"`
	Rows           string `json:"rows"`
	Batch          int    `json:"batch"`
	Threads        int    `json:"threads"`
	// ShardCount is N of --shard I/N (1: unsharded); Shards the indices this
	// state covers, increasing.
	ShardCount int   `json:"shard_count"`
	Shards     []int `json:"shards"`
	Simulate   bool  `json:"simulate,omitempty"`
	// Bytes and BaselineBytes are the models' parameter bytes.
	Bytes            int64          `json:"bytes"`
	BaselineBytes    int64          `json:"baseline_bytes,omitempty"`
	ForwardSeconds   float64        `json:"forward_seconds"`
	MaxAbsPredDiff   float64        `json:"max_abs_pred_diff"`
	ShadowMaxAbsDiff float64        `json:"shadow_max_abs_diff"`
	Skipped          int64          `json:"skipped_rows"`
	Metrics          metrics.State  `json:"metrics"`
	BaselineMetrics  *metrics.State `json:"baseline_metrics,omitempty"`
	// Digest is "sha256:" and the hex sha256 of the state's content (see
	// ContentDigest); Encode writes it, ParseState requires and checks it.
	Digest string `json:"digest,omitempty"`

	// File is where the state was read from, for messages.
	File string `json:"-"`

	// merged holds the accumulators MergeStates built the state from, so
	// that Report does not build them again from the bins (for a large
	// evaluation, 64 MiB of pages a histogram).
	merged *mergedAccs
}

type mergedAccs struct{ acc, base *metrics.Accumulator }

// NewState captures rep, an evaluation of shard index of count (0 of 1 when
// unsharded); the caller fills in the model, data and selection fields.
func NewState(rep *Report, index, count int) *State {
	s := &State{Kind: StateKind, Version: StateVersion, ShardCount: count, Shards: []int{index},
		ForwardSeconds: rep.ForwardSeconds, MaxAbsPredDiff: rep.MaxAbsPredDiff, ShadowMaxAbsDiff: rep.ShadowMaxAbsDiff,
		Skipped: rep.Data.Skipped, Metrics: rep.Acc.State()}
	if rep.BaselineAcc != nil {
		b := rep.BaselineAcc.State()
		s.BaselineMetrics = &b
	}
	return s
}

// ContentDigest is the digest of the state's content: "sha256:" and the hex
// sha256 of the state's compact JSON as encoding/json writes it (fields in
// the struct's order, no whitespace, shortest round-trip numbers) without
// the digest field. Decoding and encoding again gives the same JSON, so a
// state read back has the digest it was written with, whatever the file's
// whitespace.
//
// The JSON is streamed into the hash (see writeJSON), not built: a state of
// millions of bins is hashed without a second copy of it in memory.
func (s *State) ContentDigest() (string, error) {
	c := *s
	c.Digest = ""
	h := sha256.New()
	if err := c.writeJSON(h); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// binsMark is what encoding/json writes for an empty score_bins. It cannot
// occur inside a string of the encoding (a quote there is written \"), so
// in a state encoded with its bins emptied it marks where they go.
var binsMark = []byte(`"score_bins":[]`)

// writeJSON writes exactly json.Marshal(s) to w, the score bins a buffer
// at a time: the rest of the state is marshalled with its bins emptied and
// the bins are written where the empty arrays were.
func (s *State) writeJSON(w io.Writer) error {
	c := *s
	bins := [][][3]uint64{c.Metrics.Bins}
	c.Metrics.Bins = [][3]uint64{}
	if c.BaselineMetrics != nil {
		b := *c.BaselineMetrics
		bins = append(bins, b.Bins)
		b.Bins = [][3]uint64{}
		c.BaselineMetrics = &b
	}
	js, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	parts := bytes.Split(js, binsMark)
	if len(parts) != len(bins)+1 {
		return fmt.Errorf("internal error: %d score_bins in a state with %d histograms", len(parts)-1, len(bins))
	}
	for i, b := range bins {
		if _, err := w.Write(parts[i]); err != nil {
			return err
		}
		if _, err := w.Write(binsMark[:len(binsMark)-2]); err != nil {
			return err
		}
		if err := metrics.WriteBins(w, b); err != nil {
			return err
		}
	}
	_, err = w.Write(parts[len(bins)])
	return err
}

// withDigest is the state as written: its kind, version and digest set.
func (s *State) withDigest() (*State, error) {
	c := *s
	c.Kind, c.Version = StateKind, StateVersion
	d, err := c.ContentDigest()
	if err != nil {
		return nil, err
	}
	c.Digest = d
	return &c, nil
}

// Encode returns the state as written: compact JSON with its digest.
func (s *State) Encode() ([]byte, error) {
	c, err := s.withDigest()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := c.writeJSON(&b); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Write writes the state to path atomically, streamed as Encode would
// return it.
func (s *State) Write(path string) error {
	c, err := s.withDigest()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		if err := c.writeJSON(bw); err != nil {
			return err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
		return bw.Flush()
	})
}

// ReadState reads and checks a state file (see ParseState); only a regular
// file is read, and no more than StateMaxBytes.
func ReadState(path string) (*State, error) {
	data, err := strictjson.ReadBytes(path, stateOptions)
	if err != nil {
		return nil, err
	}
	return ParseState(path, data)
}

// IsState reports whether data looks like an evaluation state: a JSON
// object whose top-level "kind" is StateKind. It reads up to that key, not
// the whole document.
func IsState(data []byte) bool {
	sc, _ := scanState(data, stateMaxOther, true)
	return sc.kind == StateKind
}

// ParseState decodes and checks a state; name is used in errors. The JSON
// is read strictly (internal/strictjson: no key twice, no unknown or
// wrongly cased field, nothing after the object), the version must be
// StateVersion, and the digest must match the content: an edited or
// corrupted state is refused rather than merged into wrong figures.
//
// Time and memory are linear in the size and bounded by StateMaxBytes:
// score bins, all but a few hundred bytes of a large state, are read by a
// scanner rather than token by token (see scanState), and a state claiming
// more bins than an accumulator keeps (metrics.MaxBins, fewer when the
// examples or resolution allow fewer) is refused as the count passes that.
func ParseState(name string, data []byte) (*State, error) {
	if int64(len(data)) > StateMaxBytes {
		// strictjson's refusal, for the same message as any capped document.
		var s State
		return nil, strictjson.Decode(name, data, &s, stateOptions)
	}
	sc, bad := scanState(data, stateMaxOther, false)
	if bad != nil {
		if bad.tooMany {
			return nil, &strictjson.Error{File: name, Path: strictjson.Path{{Name: bad.field}, {Name: "score_bins"}},
				Msg: fmt.Sprintf("more than %d bins: an accumulator keeps at most that many (65536 pages of 64 keys), so no evaluation writes more", metrics.MaxBins)}
		}
		// The scanner stops at the first fault, so this is quick.
		if _, err := metrics.DecodeBins(data[bad.start:], -1, -1); err != nil {
			return nil, binsError(name, bad.field, err)
		}
		// Not reached: what skipBins refuses, DecodeBins does; if it did
		// not, strictjson decides.
	}
	if n := sc.outside(); n > stateMaxOther {
		return nil, &strictjson.Error{File: name, Msg: fmt.Sprintf("%d bytes besides the score_bins arrays, more than the %d an evaluation state has room for (names, digests, shard lists)", n, stateMaxOther)}
	}
	var s State
	if err := strictjson.Decode(name, emptied(data, sc.spans), &s, stateOptions); err != nil {
		return nil, err
	}
	if err := s.decodeBins(name, data, sc.spans); err != nil {
		return nil, err
	}
	return s.check(name)
}

func (s *State) check(name string) (*State, error) {
	s.File = name
	if s.Kind != StateKind {
		return nil, fmt.Errorf("%s: kind %q, want %q", name, s.Kind, StateKind)
	}
	if s.Digest == "" {
		return nil, fmt.Errorf("%s: missing \"digest\": rq eval --state-out writes one; re-run it with this rq", name)
	}
	d, err := s.ContentDigest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if d != s.Digest {
		return nil, fmt.Errorf("%s: edited or corrupted: digest mismatch (the file records %s, its content hashes to %s); evaluate the shard again", name, shortDigest(s.Digest), shortDigest(d))
	}
	if s.ShardCount > MaxShardCount {
		return nil, fmt.Errorf("%s: shard_count %d: rq merges at most %d shards (each is a run of rq eval)", name, s.ShardCount, MaxShardCount)
	}
	if s.ShardCount < 1 || len(s.Shards) == 0 || len(s.Shards) > s.ShardCount {
		return nil, fmt.Errorf("%s: shards %v of shard_count %d: want 1 to shard_count shard indices", name, s.Shards, s.ShardCount)
	}
	for i, x := range s.Shards {
		if x < 0 || x >= s.ShardCount || (i > 0 && x <= s.Shards[i-1]) {
			return nil, fmt.Errorf("%s: shards %v: want increasing indices below shard_count %d", name, s.Shards, s.ShardCount)
		}
	}
	if (s.Baseline != "") != (s.BaselineMetrics != nil) {
		return nil, fmt.Errorf("%s: baseline %q with baseline_metrics present: %v (want both or neither)", name, s.Baseline, s.BaselineMetrics != nil)
	}
	// Check rather than build the accumulators: MergeStates and Report
	// build them when they need them.
	if err := s.Metrics.Check(); err != nil {
		return nil, fmt.Errorf("%s: metrics: %w", name, err)
	}
	if b := s.BaselineMetrics; b != nil {
		if err := b.Check(); err != nil {
			return nil, fmt.Errorf("%s: baseline_metrics: %w", name, err)
		}
		if b.Examples != s.Metrics.Examples {
			return nil, fmt.Errorf("%s: baseline_metrics counts %d examples, metrics %d: they ran on the same rows", name, b.Examples, s.Metrics.Examples)
		}
	}
	return s, nil
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19] + "…"
	}
	return d
}

func (s *State) accumulators() (acc, base *metrics.Accumulator, err error) {
	if acc, err = metrics.FromState(s.Metrics); err != nil {
		return nil, nil, fmt.Errorf("metrics: %v", err)
	}
	if s.BaselineMetrics != nil {
		if base, err = metrics.FromState(*s.BaselineMetrics); err != nil {
			return nil, nil, fmt.Errorf("baseline_metrics: %v", err)
		}
		if base.Count() != acc.Count() {
			return nil, nil, fmt.Errorf("baseline_metrics counts %d examples, metrics %d: they ran on the same rows", base.Count(), acc.Count())
		}
	}
	return acc, base, nil
}

func (s *State) name() string {
	if s.File != "" {
		return s.File
	}
	return "evaluation state"
}

// MergeStates combines states of disjoint shards of one evaluation: the same
// model (by sha256), baseline, row selection, batch size and shard count.
// The result covers the union of their shards.
func MergeStates(states []*State) (*State, error) {
	if len(states) == 0 {
		return nil, fmt.Errorf("no evaluation states to merge")
	}
	first := states[0]
	out := *first
	out.File, out.Digest, out.merged = "", "", nil
	out.Shards = slices.Clone(first.Shards)
	acc, base, err := first.accumulators()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", first.name(), err)
	}
	owner := map[int]string{}
	for _, x := range first.Shards {
		owner[x] = first.name()
	}
	for _, s := range states[1:] {
		for _, c := range []struct {
			what string
			a, b string
		}{
			{"model sha256", first.ModelSHA256, s.ModelSHA256},
			{"baseline sha256", first.BaselineSHA256, s.BaselineSHA256},
			{"rows", first.Rows, s.Rows},
			{"batch", strconv.Itoa(first.Batch), strconv.Itoa(s.Batch)},
			{"shard count", strconv.Itoa(first.ShardCount), strconv.Itoa(s.ShardCount)},
			{"simulate", strconv.FormatBool(first.Simulate), strconv.FormatBool(s.Simulate)},
		} {
			if c.a != c.b {
				return nil, fmt.Errorf("cannot merge %s with %s: %s %q differs from %q (shards of one evaluation share model, baseline, rows, batch and shard count)", s.name(), first.name(), c.what, c.b, c.a)
			}
		}
		for _, x := range s.Shards {
			if o, dup := owner[x]; dup {
				return nil, fmt.Errorf("shard %d/%d is in both %s and %s", x, s.ShardCount, o, s.name())
			}
			owner[x] = s.name()
		}
		if (s.BaselineMetrics != nil) != (base != nil) {
			return nil, fmt.Errorf("cannot merge %s with %s: one has baseline metrics, the other not", s.name(), first.name())
		}
		if s.BaselineMetrics != nil && s.BaselineMetrics.Examples != s.Metrics.Examples {
			return nil, fmt.Errorf("%s: baseline_metrics counts %d examples, metrics %d: they ran on the same rows", s.name(), s.BaselineMetrics.Examples, s.Metrics.Examples)
		}
		// Folded in without an accumulator each: a large state's pages
		// would be another 64 MiB a histogram.
		if err := acc.MergeState(s.Metrics); err != nil {
			return nil, fmt.Errorf("%s: metrics: %v", s.name(), err)
		}
		if base != nil {
			if err := base.MergeState(*s.BaselineMetrics); err != nil {
				return nil, fmt.Errorf("%s: baseline_metrics: %v", s.name(), err)
			}
		}
		out.Shards = append(out.Shards, s.Shards...)
		out.ForwardSeconds += s.ForwardSeconds
		out.MaxAbsPredDiff = max(out.MaxAbsPredDiff, s.MaxAbsPredDiff)
		out.ShadowMaxAbsDiff = max(out.ShadowMaxAbsDiff, s.ShadowMaxAbsDiff)
		// Every shard reads (and skips) every bad row: the counts agree.
		out.Skipped = max(out.Skipped, s.Skipped)
		if s.Data != first.Data {
			out.Data = commonName(out.Data, s.Data)
		}
	}
	slices.Sort(out.Shards)
	out.Metrics = acc.State()
	if base != nil {
		b := base.State()
		out.BaselineMetrics = &b
	}
	out.merged = &mergedAccs{acc, base}
	return &out, nil
}

// commonName joins two data paths that differ (machines mount data apart).
func commonName(a, b string) string {
	if strings.Contains(a, b) {
		return a
	}
	return a + " + " + b
}

// Complete reports whether the state covers every shard.
func (s *State) Complete() bool { return len(s.Shards) == s.ShardCount }

// Missing lists the shards the state lacks, in time linear in the shard
// count (at most MaxShardCount for a state that was read).
func (s *State) Missing() []int {
	have := slices.Sorted(slices.Values(s.Shards))
	var out []int
	for i := range s.ShardCount {
		if len(have) > 0 && have[0] == i {
			for len(have) > 0 && have[0] == i {
				have = have[1:]
			}
			continue
		}
		out = append(out, i)
	}
	return out
}

// Report rebuilds the evaluation report the state stands for. For a state
// from MergeStates, the report's accumulators are those it merged into (not
// rebuilt from the bins): read them, do not add to them.
func (s *State) Report() (*Report, error) {
	var acc, base *metrics.Accumulator
	var err error
	if m := s.merged; m != nil {
		acc, base = m.acc, m.base
	} else if acc, base, err = s.accumulators(); err != nil {
		return nil, fmt.Errorf("%s: %v", s.name(), err)
	}
	res, err := acc.Result()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name(), err)
	}
	rep := &Report{Result: res, Acc: acc, BaselineAcc: base, ForwardSeconds: s.ForwardSeconds,
		MaxAbsPredDiff: s.MaxAbsPredDiff, ShadowMaxAbsDiff: s.ShadowMaxAbsDiff}
	rep.Data.Rows = res.Examples
	rep.Data.Skipped = s.Skipped
	if s.ForwardSeconds > 0 {
		rep.ExamplesPerSec = float64(res.Examples) / s.ForwardSeconds
	}
	if base != nil {
		br, err := base.Result()
		if err != nil {
			return nil, fmt.Errorf("%s: baseline: %w", s.name(), err)
		}
		rep.Baseline = &br
		d := Compare(res, br)
		rep.Delta = &d
	}
	return rep, nil
}
