package search

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"time"

	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
)

// Objectives.
const (
	ObjectiveSize    = "size"    // fewest bytes
	ObjectiveLatency = "latency" // least predicted forward time (needs a CostModel)
)

// Reasons a search stopped before finishing (Result.Stopped).
const (
	StopMaxEvals  = "max-evals"
	StopTimeLimit = "time-limit"
	StopCanceled  = "canceled"
)

// PresetName marks plans the search writes (quantize.Plan.Preset).
const PresetName = "search"

// Options configure Run.
type Options struct {
	Budget    Budget
	Objective string  // ObjectiveSize (default) or ObjectiveLatency
	Ladders   Ladders // zero value: DefaultLadders(false)
	// Cost predicts latency: required for ObjectiveLatency; with the size
	// objective it only fills the trace's and table's latency figures.
	Cost       *CostModel
	Confidence float64 // default DefaultConfidence
	Resamples  int     // default DefaultResamples
	Seed       uint64  // default DefaultSeed
	// MaxEvals bounds the plans evaluated (the baseline and plans taken
	// from Resume not counted); 0: no bound. TimeLimit bounds the run's
	// time; 0: none. Either stops the search with the best plan so far.
	MaxEvals  int
	TimeLimit time.Duration
	// Resume is a previous trace on the same rows: its plans are not
	// evaluated again.
	Resume *Trace
	// Progress is called after each evaluated plan with the evaluations
	// done and an estimate of the total (it may grow as the search learns).
	Progress func(done, total int)
	// Checkpoint is called with the trace after each evaluated plan, so
	// the caller can write it and an interrupted search can resume.
	Checkpoint func(*Trace)
}

// LayerRow is one layer of the result's table.
type LayerRow struct {
	Layer     string              `json:"layer"`
	Kind      string              `json:"kind"`
	Rung      string              `json:"rung"`
	Precision precision.Precision `json:"precision"`
	// Own is the layer's sensitivity: ΔNE% and ΔAUC with that layer alone
	// at OwnRung (its lowest), every other layer fp32. Nil when the layer
	// has no rung below fp32 or the search stopped before measuring it.
	Own       *Stats  `json:"own,omitempty"`
	OwnRung   string  `json:"own_rung,omitempty"`
	Bytes     int64   `json:"bytes"`
	FP32Bytes int64   `json:"fp32_bytes"`
	LatencyUS float64 `json:"latency_us,omitempty"`
}

// Summary is the outcome in figures.
type Summary struct {
	Stats
	Verdict       Verdict `json:"verdict"`
	Bytes         int64   `json:"bytes"`
	FP32Bytes     int64   `json:"fp32_bytes"`
	LatencyUS     float64 `json:"latency_us,omitempty"`
	FP32LatencyUS float64 `json:"fp32_latency_us,omitempty"`
	// Evaluations is the plans evaluated by this run (baseline and resumed
	// plans excluded); Steps splits them by step; Resumed counts plans
	// answered from the resumed trace.
	Evaluations int            `json:"evaluations"`
	Steps       map[string]int `json:"steps"`
	Resumed     int            `json:"resumed"`
	// Bound is layers + 2*ceil(log2(layers)) + reclaim steps: the budget
	// the search's evaluations, middle-rung steps aside, stay within.
	Bound   int     `json:"bound"`
	Layers  int     `json:"layers"` // layers with a rung below fp32
	Seconds float64 `json:"seconds"`
}

// Result is a search's outcome.
type Result struct {
	// Plan is the chosen plan (every layer named). When Attained is false
	// it is the best plan found (smallest ΔNE upper end), which breaks the
	// budget, or all fp32 when no plan quantizing a layer was evaluated.
	Plan     *quantize.Plan `json:"plan"`
	Attained bool           `json:"attained"`
	// Stopped says why the search ended early ("" when it finished).
	Stopped string `json:"stopped,omitempty"`
	// Explanation, when the budget was not attained, says which layers
	// could not be brought within it even with fp32 neighbours.
	Explanation []string   `json:"explanation,omitempty"`
	Layers      []LayerRow `json:"layers"`
	Summary     Summary    `json:"summary"`
	// Holdout is the plan judged on held-out rows (Verify), when the
	// caller asked for it; Run leaves it nil.
	Holdout *Holdout `json:"holdout,omitempty"`
	Trace   *Trace   `json:"-"`
}

// errStop ends the search early; stopped says why.
type errStop struct{ why string }

func (e errStop) Error() string { return "search stopped: " + e.why }

type searcher struct {
	ev      Evaluator
	opts    Options
	layers  []Layer
	ladders [][]Rung
	active  []int // layers with a rung below fp32
	cost    []func(r int) float64
	bs      *bootstrap
	trace   *Trace
	cache   map[string]*Entry
	evals   int
	resumed int
	steps   map[string]int
	sens    map[int]*Entry
	order   []int
	k       int // fallen-back prefix length, once known
	start   time.Time
	limit   context.Context
}

// Run searches for the cheapest plan within the budget.
func Run(ctx context.Context, ev Evaluator, opts Options) (*Result, error) {
	s, err := newSearcher(ev, opts)
	if err != nil {
		return nil, err
	}
	limit := ctx
	if opts.TimeLimit > 0 {
		var cancel context.CancelFunc
		limit, cancel = context.WithTimeout(ctx, opts.TimeLimit)
		defer cancel()
	}
	s.limit = limit
	if err := s.baseline(ctx); err != nil {
		return nil, err
	}
	stopped := ""
	if err := s.run(); err != nil {
		var st errStop
		if !errors.As(err, &st) {
			return nil, err
		}
		stopped = st.why
	}
	return s.result(stopped), nil
}

func newSearcher(ev Evaluator, opts Options) (*searcher, error) {
	if opts.Objective == "" {
		opts.Objective = ObjectiveSize
	}
	if opts.Objective != ObjectiveSize && opts.Objective != ObjectiveLatency {
		return nil, fmt.Errorf("objective %q: want %q or %q", opts.Objective, ObjectiveSize, ObjectiveLatency)
	}
	if opts.Objective == ObjectiveLatency && opts.Cost == nil {
		return nil, fmt.Errorf("the latency objective needs a cost model (LoadOrMeasureCost)")
	}
	if math.IsNaN(opts.Budget.MaxNEDelta) || math.IsInf(opts.Budget.MaxNEDelta, 0) {
		return nil, fmt.Errorf("max NE delta %v: want a number of percent (e.g. 0.05)", opts.Budget.MaxNEDelta)
	}
	if math.IsInf(opts.Budget.MaxAUCDrop, 0) {
		return nil, fmt.Errorf("max AUC drop %v: want a number (e.g. 0.0005)", opts.Budget.MaxAUCDrop)
	}
	opts.bootstrapDefaults()
	if opts.MaxEvals < 0 {
		return nil, fmt.Errorf("max evaluations %d: want 0 (no bound) or more", opts.MaxEvals)
	}
	if opts.Ladders.FC == nil && opts.Ladders.Table == nil && opts.Ladders.PerLayer == nil {
		opts.Ladders = DefaultLadders(false)
	}
	s := &searcher{ev: ev, opts: opts, layers: ev.Layers(), cache: map[string]*Entry{}, steps: map[string]int{}, sens: map[int]*Entry{}, start: time.Now()}
	if len(s.layers) == 0 {
		return nil, fmt.Errorf("the model has no layers to quantize")
	}
	ladders, err := opts.Ladders.resolve(s.layers)
	if err != nil {
		return nil, err
	}
	for i, l := range s.layers {
		c := func(r Rung) float64 {
			if opts.Objective == ObjectiveLatency {
				return opts.Cost.Seconds(l, r.Plan)
			}
			return float64(l.Bytes(r.Plan))
		}
		if opts.Objective == ObjectiveLatency && c(ladders[i][len(ladders[i])-1]) == 0 {
			return nil, fmt.Errorf("the cost model has no figure for %s: measure it for this model", l.Name)
		}
		ladders[i] = prune(ladders[i], c)
		lad := ladders[i]
		s.cost = append(s.cost, func(r int) float64 { return c(lad[r]) })
		if len(lad) > 1 {
			s.active = append(s.active, i)
		}
	}
	s.ladders = ladders
	return s, nil
}

// bootstrapDefaults gives the bootstrap settings left zero their defaults
// (Run and Verify judge plans alike).
func (o *Options) bootstrapDefaults() {
	if o.Confidence == 0 {
		o.Confidence = DefaultConfidence
	}
	if o.Resamples == 0 {
		o.Resamples = DefaultResamples
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
}

func (s *searcher) top(i int) int { return len(s.ladders[i]) - 1 }

// plan turns rung indices into plan layers (every layer named).
func (s *searcher) planLayers(rungs []int) map[string]quantize.LayerPlan {
	m := map[string]quantize.LayerPlan{}
	for i, l := range s.layers {
		m[l.Name] = s.ladders[i][rungs[i]].Plan
	}
	return m
}

func (s *searcher) allTop() []int {
	r := make([]int, len(s.layers))
	for i := range r {
		r[i] = s.top(i)
	}
	return r
}

func (s *searcher) planCost(rungs []int) float64 {
	var c float64
	for i, r := range rungs {
		c += s.cost[i](r)
	}
	return c
}

func (s *searcher) latencyUS(layers map[string]quantize.LayerPlan) float64 {
	if s.opts.Cost == nil {
		return 0
	}
	var t float64
	for _, l := range s.layers {
		lp, ok := layers[l.Name]
		if !ok {
			lp = quantize.LayerPlan{Precision: precision.FP32}
		}
		t += s.opts.Cost.Seconds(l, lp)
	}
	return t * 1e6
}

// baseline evaluates the fp32 model, sets up the bootstrap, and loads the
// resumed trace.
func (s *searcher) baseline(ctx context.Context) error {
	t0 := time.Now()
	plan := &quantize.Plan{Version: quantize.PlanVersion, Layers: map[string]quantize.LayerPlan{}}
	out, err := s.ev.Evaluate(ctx, plan)
	if err != nil {
		return fmt.Errorf("fp32 baseline: %w", err)
	}
	labels := s.ev.Labels()
	if s.bs, err = newBootstrap(labels, out.Pred, s.opts.Resamples, s.opts.Confidence, s.opts.Seed); err != nil {
		return err
	}
	s.trace = &Trace{Version: TraceVersion, Rows: len(labels), Fingerprint: fingerprint(labels, out.Pred),
		Confidence: s.opts.Confidence, Resamples: s.opts.Resamples, Seed: s.opts.Seed,
		MaxNEDelta: s.opts.Budget.MaxNEDelta, Objective: s.opts.Objective}
	if s.opts.Budget.hasAUC() {
		v := s.opts.Budget.MaxAUCDrop
		s.trace.MaxAUCDrop = &v
	}
	e := &Entry{Step: StepBaseline, Plan: map[string]quantize.LayerPlan{}, Bytes: out.Bytes,
		LatencyUS: s.latencyUS(nil), Seconds: time.Since(t0).Seconds()}
	e.Verdict = s.opts.Budget.Judge(e.Stats)
	s.trace.Entries = append(s.trace.Entries, *e)
	s.cache[planKey(nil)] = e
	if r := s.opts.Resume; r != nil {
		switch {
		case r.Rows != s.trace.Rows || r.Fingerprint != s.trace.Fingerprint:
			return fmt.Errorf("the trace to resume is of other rows or another model (%d rows, fingerprint %.12s; now %d rows, %.12s)", r.Rows, r.Fingerprint, s.trace.Rows, s.trace.Fingerprint)
		case r.Confidence != s.trace.Confidence || r.Resamples != s.trace.Resamples || r.Seed != s.trace.Seed:
			return fmt.Errorf("the trace to resume used confidence %g, %d resamples, seed %d; this search uses %g, %d, %d", r.Confidence, r.Resamples, r.Seed, s.trace.Confidence, s.trace.Resamples, s.trace.Seed)
		}
		for _, old := range r.Entries {
			if old.Step == StepBaseline {
				continue
			}
			key := planKey(old.Plan)
			if _, ok := s.cache[key]; ok {
				continue
			}
			ne := old
			ne.Resumed = true
			ne.Verdict = s.opts.Budget.Judge(ne.Stats) // the budget may have changed
			s.trace.Entries = append(s.trace.Entries, ne)
			s.cache[key] = &s.trace.Entries[len(s.trace.Entries)-1]
		}
		// Entries moved when the slice grew: point the cache at the copies.
		for i := range s.trace.Entries {
			s.cache[planKey(s.trace.Entries[i].Plan)] = &s.trace.Entries[i]
		}
	}
	return nil
}

// eval returns the entry of the plan with the given rungs, evaluating it
// unless it was evaluated before (in this run or the resumed trace).
func (s *searcher) eval(step string, layer int, rungs []int) (*Entry, error) {
	layers := s.planLayers(rungs)
	key := planKey(layers)
	if e, ok := s.cache[key]; ok {
		if e.Resumed {
			s.resumed++
		}
		return e, nil
	}
	if s.opts.MaxEvals > 0 && s.evals >= s.opts.MaxEvals {
		return nil, errStop{StopMaxEvals}
	}
	if err := s.limitErr(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	out, err := s.ev.Evaluate(s.limit, &quantize.Plan{Version: quantize.PlanVersion, Layers: layers})
	if err != nil {
		if lerr := s.limitErr(); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	st, err := s.bs.compare(out.Pred)
	if err != nil {
		return nil, err
	}
	e := Entry{Step: step, Plan: map[string]quantize.LayerPlan{}, Stats: st, Verdict: s.opts.Budget.Judge(st),
		Bytes: out.Bytes, LatencyUS: s.latencyUS(layers), Seconds: time.Since(t0).Seconds()}
	for k, v := range layers {
		if v.Precision != precision.FP32 {
			e.Plan[k] = v
		}
	}
	if layer >= 0 {
		e.Layer, e.Rung = s.layers[layer].Name, s.ladders[layer][rungs[layer]].Name
	}
	s.trace.Entries = append(s.trace.Entries, e)
	for i := range s.trace.Entries { // the slice may have moved
		s.cache[planKey(s.trace.Entries[i].Plan)] = &s.trace.Entries[i]
	}
	s.evals++
	s.steps[step]++
	if s.opts.Progress != nil {
		s.opts.Progress(s.evals, s.estimate())
	}
	if s.opts.Checkpoint != nil {
		s.opts.Checkpoint(s.trace)
	}
	return s.cache[key], nil
}

func (s *searcher) limitErr() error {
	if err := s.limit.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && s.opts.TimeLimit > 0 && time.Since(s.start) >= s.opts.TimeLimit {
			return errStop{StopTimeLimit}
		}
		return errStop{StopCanceled}
	}
	return nil
}

func ceilLog2(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// estimate is the expected total of evaluations: all-lowest, sensitivity,
// bisection, then the climb (bounded by the prefix's ladder lengths once
// the prefix is known, a quarter of the layers before).
func (s *searcher) estimate() int {
	n := len(s.active)
	est := 1 + n + ceilLog2(n)
	if s.order != nil && s.k >= 0 {
		for _, i := range s.order[:s.k] {
			est += s.top(i)
		}
	} else {
		est += n / 4
	}
	return max(est, s.evals)
}

func (s *searcher) run() error {
	s.k = -1
	if len(s.active) == 0 {
		return nil
	}
	// 1. Everything at its lowest rung.
	low := s.allTop()
	for _, i := range s.active {
		low[i] = 0
	}
	e, err := s.eval(StepAllLowest, -1, low)
	if err != nil || e.Verdict == Pass {
		return err
	}
	// 2. Sensitivity: each layer alone at its lowest rung.
	for _, i := range s.active {
		r := s.allTop()
		r[i] = 0
		e, err := s.eval(StepSensitivity, i, r)
		if err != nil {
			return err
		}
		s.sens[i] = e
	}
	s.order = append([]int(nil), s.active...)
	sort.SliceStable(s.order, func(a, b int) bool {
		ea, eb := s.sens[s.order[a]], s.sens[s.order[b]]
		if ea.DeltaNE.Point != eb.DeltaNE.Point {
			return ea.DeltaNE.Point > eb.DeltaNE.Point
		}
		return ea.DeltaAUC.Point < eb.DeltaAUC.Point
	})
	// 3. Bisection for the shortest prefix of the most sensitive layers
	// that must fall back to fp32: prefix 0 (all lowest) fails; the whole
	// list (all fp32) passes if any plan can.
	n := len(s.order)
	if s.opts.Budget.Judge(Stats{}) != Pass {
		s.k = n
		return nil // even the fp32 model breaks this budget
	}
	prefix := func(k int) []int {
		r := append([]int(nil), low...)
		for _, i := range s.order[:k] {
			r[i] = s.top(i)
		}
		return r
	}
	lo, hi := 0, n
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		e, err := s.eval(StepBisect, -1, prefix(mid))
		if err != nil {
			return err
		}
		if e.Verdict == Pass {
			hi = mid
		} else {
			lo = mid
		}
	}
	s.k = hi
	// 4. Climb: each fallen-back layer, least sensitive first, tries its
	// ladder from the lowest rung up (reclaim, then middle rungs) and
	// keeps the first rung that meets the budget with the current plan.
	cur := prefix(s.k)
	for j := s.k - 1; j >= 0; j-- {
		i := s.order[j]
		for r := 0; r < s.top(i); r++ {
			try := append([]int(nil), cur...)
			try[i] = r
			step := StepMiddle
			if r == 0 {
				step = StepReclaim
			}
			e, err := s.eval(step, i, try)
			if err != nil {
				return err
			}
			if e.Verdict == Pass {
				cur = try
				break
			}
		}
	}
	return nil
}

// rungsOf maps an entry's plan back to rung indices (-1: not on the ladder).
func (s *searcher) rungsOf(plan map[string]quantize.LayerPlan) []int {
	r := make([]int, len(s.layers))
	for i, l := range s.layers {
		lp, ok := plan[l.Name]
		if !ok {
			lp = quantize.LayerPlan{Precision: precision.FP32}
		}
		r[i] = -1
		for j, rung := range s.ladders[i] {
			if rung.Plan == lp {
				r[i] = j
			}
		}
	}
	return r
}

// result picks the final plan: the cheapest passing plan that quantizes a
// layer, else the one with the smallest ΔNE upper end.
func (s *searcher) result(stopped string) *Result {
	var best *Entry
	var bestRungs []int
	attained := false
	for i := range s.trace.Entries {
		e := &s.trace.Entries[i]
		if len(e.Plan) == 0 {
			continue
		}
		r := s.rungsOf(e.Plan)
		if slicesContains(r, -1) {
			continue // from a resumed trace with other ladders
		}
		pass := e.Verdict == Pass
		better := false
		switch {
		case best == nil:
			better = true
		case pass != attained:
			better = pass
		case pass:
			cb, ce := s.planCost(bestRungs), s.planCost(r)
			better = ce < cb || (ce == cb && e.DeltaNE.Hi < best.DeltaNE.Hi)
		default:
			better = e.DeltaNE.Hi < best.DeltaNE.Hi
		}
		if better {
			best, bestRungs, attained = e, r, pass
		}
	}
	if best == nil {
		best, bestRungs = s.cache[planKey(nil)], s.allTop()
	}
	res := &Result{Attained: attained, Stopped: stopped, Trace: s.trace,
		Plan: &quantize.Plan{Version: quantize.PlanVersion, Preset: PresetName, Layers: s.planLayers(bestRungs)}}
	base := s.cache[planKey(nil)]
	sum := Summary{Stats: best.Stats, Verdict: best.Verdict, Bytes: best.Bytes, FP32Bytes: base.Bytes,
		LatencyUS: best.LatencyUS, FP32LatencyUS: base.LatencyUS, Evaluations: s.evals, Steps: s.steps,
		Resumed: s.resumed, Layers: len(s.active), Seconds: time.Since(s.start).Seconds()}
	sum.Bound = len(s.active) + 2*ceilLog2(len(s.active)) + s.steps[StepReclaim]
	res.Summary = sum
	for i, l := range s.layers {
		lp := s.ladders[i][bestRungs[i]]
		row := LayerRow{Layer: l.Name, Kind: l.Kind, Rung: lp.Name, Precision: lp.Plan.Precision,
			Bytes: l.Bytes(lp.Plan), FP32Bytes: l.Bytes(quantize.LayerPlan{Precision: precision.FP32})}
		if s.opts.Cost != nil {
			row.LatencyUS = s.opts.Cost.Seconds(l, lp.Plan) * 1e6
		}
		if e, ok := s.sens[i]; ok {
			st := e.Stats
			row.Own, row.OwnRung = &st, s.ladders[i][0].Name
		}
		res.Layers = append(res.Layers, row)
	}
	if !attained {
		res.Explanation = s.explain(best)
	}
	return res
}

func slicesContains(x []int, v int) bool {
	for _, y := range x {
		if y == v {
			return true
		}
	}
	return false
}

// explain says why no plan met the budget, naming the layers that break
// it on their own, every other layer fp32.
func (s *searcher) explain(best *Entry) []string {
	b := s.opts.Budget
	budget := fmt.Sprintf("ΔNE <= %+g%%", b.MaxNEDelta)
	if b.hasAUC() {
		budget += fmt.Sprintf(", AUC drop <= %g", b.MaxAUCDrop)
	}
	conf := 100 * s.opts.Confidence
	var out []string
	switch {
	case len(s.active) == 0:
		return []string{"no layer has a rung below fp32 on its ladder: nothing to search"}
	case b.Judge(Stats{}) != Pass:
		return []string{fmt.Sprintf("the budget (%s) excludes even the fp32 model itself (ΔNE 0): no plan can meet it", budget)}
	}
	out = append(out, fmt.Sprintf("no plan that quantizes a layer met the budget (%s at the upper end of the %g%% interval)", budget, conf))
	if len(best.Plan) > 0 {
		out = append(out, fmt.Sprintf("best plan found: ΔNE %+.4f%% (%g%% CI %+.4f%% .. %+.4f%%), ΔAUC %+.5f, %s", best.DeltaNE.Point, conf, best.DeltaNE.Lo, best.DeltaNE.Hi, best.DeltaAUC.Point, best.Verdict))
	}
	measured := 0
	for _, i := range s.active {
		e, ok := s.sens[i]
		if !ok {
			continue
		}
		measured++
		if e.Verdict == Pass {
			continue
		}
		why := "breaks it"
		if e.Verdict == Inconclusive {
			why = "cannot be shown within it on these rows (inconclusive)"
		}
		out = append(out, fmt.Sprintf("%s alone at %s, every other layer fp32: ΔNE %+.4f%% (CI %+.4f%% .. %+.4f%%), ΔAUC %+.5f: %s",
			s.layers[i].Name, s.ladders[i][0].Name, e.DeltaNE.Point, e.DeltaNE.Lo, e.DeltaNE.Hi, e.DeltaAUC.Point, why))
	}
	if measured < len(s.active) {
		out = append(out, fmt.Sprintf("%d of %d layers' sensitivity was not measured before the search stopped", len(s.active)-measured, len(s.active)))
	}
	return out
}
