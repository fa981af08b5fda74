package calibrate

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Range methods: how a quantization range is chosen from a histogram.
const (
	// MethodMinMax is [min, max] of the data.
	MethodMinMax = "minmax"
	// MethodPercentile clips the (100-p)% lowest and highest values.
	MethodPercentile = "percentile"
	// MethodL2 minimizes the expected squared quantization error.
	MethodL2 = "l2"
	// MethodEntropy minimizes the KL divergence between the value
	// distribution and its quantized version (TensorRT / MXNet).
	MethodEntropy = "entropy"
)

// Methods lists every range method, in the order ranges.json writes them.
var Methods = []string{MethodMinMax, MethodPercentile, MethodL2, MethodEntropy}

// Defaults of RangeOptions and Options.
const (
	DefaultPercentile = 99.99
	DefaultLevels     = 256 // an 8-bit quantizer; 128 with reduce_range
	DefaultMethod     = MethodL2
	MinLevels         = 2
	MaxLevels         = 1 << 16
)

// RangeOptions parameterize ComputeRange.
type RangeOptions struct {
	// Levels is the number of quantization levels (0 means DefaultLevels).
	Levels int
	// Percentile is p for MethodPercentile, in (50, 100] (0 means
	// DefaultPercentile).
	Percentile float64
	// FollowsReLU fixes the lower end at 0: the input is a ReLU's output.
	FollowsReLU bool
}

func (o RangeOptions) resolve() (RangeOptions, error) {
	if o.Levels == 0 {
		o.Levels = DefaultLevels
	}
	if o.Percentile == 0 {
		o.Percentile = DefaultPercentile
	}
	if o.Levels < MinLevels || o.Levels > MaxLevels {
		return o, fmt.Errorf("%d quantization levels: want %d..%d", o.Levels, MinLevels, MaxLevels)
	}
	if !(o.Percentile > 50 && o.Percentile <= 100) {
		return o, fmt.Errorf("percentile %v: want a number in (50, 100], e.g. 99.99", o.Percentile)
	}
	return o, nil
}

// knownMethod reports whether m names a range method.
func knownMethod(m string) bool {
	for _, k := range Methods {
		if m == k {
			return true
		}
	}
	return false
}

func unknownMethod(m string) error {
	return fmt.Errorf("unknown range method %q: want one of %s", m, strings.Join(Methods, ", "))
}

// ComputeRange chooses the quantization range [lo, hi] of the values h
// counted. The range always contains 0 (a quantizer needs 0 exact), lies
// within [min(0,min), max(0,max)] of the data, and has lo == 0 when
// o.FollowsReLU. It fails on an unknown method, bad options, or a histogram
// without finite values.
func ComputeRange(h *Histogram, method string, o RangeOptions) (lo, hi float32, err error) {
	o, err = o.resolve()
	if err != nil {
		return 0, 0, err
	}
	if !knownMethod(method) {
		return 0, 0, unknownMethod(method)
	}
	if h.Count() == 0 {
		return 0, 0, fmt.Errorf("no finite values observed: cannot choose a range")
	}
	d := newDist(h)
	var l, u float64
	switch method {
	case MethodMinMax:
		l, u = d.a, d.b
	case MethodPercentile:
		l, u = d.percentile(o.Percentile)
	case MethodL2:
		l, u = d.l2(o.Levels, o.FollowsReLU)
	case MethodEntropy:
		l, u = d.entropy(o.Levels, o.FollowsReLU)
	}
	if o.FollowsReLU {
		l = 0
	}
	// Clamping in float64 to bounds that are float32 values keeps the
	// rounded results inside them, and rounding preserves the signs.
	l = min(max(l, d.a), 0)
	u = max(min(u, d.b), 0)
	return float32(l) + 0, float32(u) + 0, nil // +0: no -0 in the file
}

// computeAll fills every method's range.
func computeAll(h *Histogram, o RangeOptions) (map[string][2]float32, error) {
	out := make(map[string][2]float32, len(Methods))
	for _, m := range Methods {
		lo, hi, err := ComputeRange(h, m, o)
		if err != nil {
			return nil, err
		}
		out[m] = [2]float32{lo, hi}
	}
	return out, nil
}

// dist is a histogram read as a piecewise-uniform distribution: each bin's
// count spread evenly over its support, which is the bin except that the
// first and last occupied bins end at the data's exact min and max, plus the
// exact zeros as a point mass at 0 (taken out of their bin).
type dist struct {
	n      int
	exp    int
	start  int64
	c      []float64 // counts, zeros removed from bin z
	s, t   []float64 // support of each bin
	zeros  float64
	total  float64 // sum(c) + zeros
	mn, mx float64
	a, b   float64 // min(0, mn), max(0, mx)
	j0, j1 int     // first and last bins holding data
	z      int     // index of the bin edge at 0

	// Prefix sums over bins [0, j): count, first moment about 0, second
	// moment about 0 (center² + width²/12 per unit of count: exact for a
	// uniform spread), for the L2 error in O(1) per candidate range.
	C, M1, M2 []float64
	// Entropy's prefix sums: bins with a non-zero count, and sum of c·ln c.
	NZ []int
	CL []float64
}

func newDist(h *Histogram) *dist {
	n := len(h.counts)
	d := &dist{n: n, exp: h.exp, start: h.start,
		c: make([]float64, n), s: make([]float64, n), t: make([]float64, n),
		C: make([]float64, n+1), M1: make([]float64, n+1), M2: make([]float64, n+1),
		NZ: make([]int, n+1), CL: make([]float64, n+1)}
	d.mn, d.mx = float64(h.Min()), float64(h.Max())
	d.a, d.b = min(0, d.mn), max(0, d.mx)
	d.j0 = int(floorIdx(d.mn, h.exp) - h.start)
	d.j1 = int(floorIdx(d.mx, h.exp) - h.start)
	d.z = int(-h.start)
	d.zeros = float64(h.zeros)
	for j, cnt := range h.counts {
		c := float64(cnt)
		if j == d.z {
			c -= d.zeros
		}
		s, t := d.edge(j), d.edge(j+1)
		if j == d.j0 {
			s = d.mn
		}
		if j == d.j1 {
			t = d.mx
		}
		if j == d.z && s < 0 {
			s = 0 // only when mn is -0
		}
		d.c[j], d.s[j], d.t[j] = c, s, t
		m, w := (s+t)/2, t-s
		d.C[j+1] = d.C[j] + c
		d.M1[j+1] = d.M1[j] + c*m
		d.M2[j+1] = d.M2[j] + c*(m*m+w*w/12)
		d.NZ[j+1] = d.NZ[j]
		d.CL[j+1] = d.CL[j]
		if c > 0 {
			d.NZ[j+1]++
			d.CL[j+1] += c * math.Log(c)
		}
	}
	d.total = d.C[n] + d.zeros
	return d
}

// edge is the value of bin edge i (exact).
func (d *dist) edge(i int) float64 { return math.Ldexp(float64(d.start+int64(i)), d.exp) }

// lov and hiv are the range ends for edge indices, the outermost ones being
// the data's own min and max (never beyond them).
func (d *dist) lov(i int) float64 { return max(d.edge(i), d.a) }
func (d *dist) hiv(i int) float64 { return min(d.edge(i), d.b) }

// Candidate edge indices: lo in [loFirst, z], hi in [z, hiLast]. Every
// candidate range contains 0, and the outermost candidates are [a, b].
func (d *dist) loFirst() int { return min(d.j0, d.z) }
func (d *dist) hiLast() int  { return max(d.j1+1, d.z) }

// quantile is the value below which a fraction f of the mass lies.
func (d *dist) quantile(f float64) float64 {
	T := f * d.total
	if T <= 0 {
		return d.mn
	}
	if T >= d.total {
		return d.mx
	}
	// Mass below bin j's nonzero part, the zeros sitting at the bottom of
	// bin z: C[j] for j <= z, C[j] + zeros beyond.
	below := func(j int) float64 {
		if j > d.z {
			return d.C[j] + d.zeros
		}
		return d.C[j]
	}
	if d.zeros > 0 && T > below(d.z) && T <= below(d.z)+d.zeros {
		return 0
	}
	j := sort.Search(d.n, func(j int) bool { return below(j+1) >= T })
	if j >= d.n || d.c[j] <= 0 {
		// Only reachable through rounding at the very top.
		return d.mx
	}
	base := below(j)
	if j == d.z {
		base += d.zeros
	}
	frac := min(max((T-base)/d.c[j], 0), 1)
	return d.s[j] + frac*(d.t[j]-d.s[j])
}

// percentile is the two-sided [(100-p)%, p%] range (ComputeRange fixes lo at
// 0 for ReLU inputs).
func (d *dist) percentile(p float64) (lo, hi float64) {
	return d.quantile(1 - p/100), d.quantile(p / 100)
}

// l2 returns the candidate range minimizing the expected squared error of an
// asymmetric quantizer with the given levels over [lo, hi]: step
// Δ = (hi-lo)/(levels-1) on a grid holding 0 exactly.
//
// Error model, per unit of count, with each bin's values spread uniformly
// over its support:
//   - beyond the range, a value clips to the bound: (x-bound)², integrated
//     exactly over the bin (c·((center-bound)² + width²/12));
//   - inside, a bin wholly within Δ/2 of 0 rounds to 0: error x²,
//     integrated exactly (near 0 the grid position is known, and the usual
//     average is wrong: it matters for the many small values around a ReLU
//     when the histogram is finer than the step);
//   - elsewhere inside, the rounding noise Δ²/12;
//   - exact zeros cost nothing.
//
// The search is exhaustive over candidate pairs (lo at a bin edge in [min,0]
// or at min, hi at a bin edge in [0,max] or at max): the prefix sums make
// each candidate O(1), so the global optimum of the model costs
// O(bins²) in the worst case (a few ms for 2048 bins). Ties go to the widest
// range. The zero-point rounding of a real quantizer (which shifts the grid
// by under Δ/2) is ignored.
func (d *dist) l2(levels int, relu bool) (lo, hi float64) {
	loA, loB := d.loFirst(), d.z
	if relu {
		loA = d.z
	}
	hiA, hiB := d.z, d.hiLast()
	C, M1, M2 := d.C, d.M1, d.M2
	n := d.n
	best := math.Inf(1)
	bestLo, bestHi := d.lov(loA), d.hiv(hiB)
	// Widest first, keeping the first of equal errors.
	for i0 := loA; i0 <= loB; i0++ {
		a := d.lov(i0)
		clipLo := max(0, M2[i0]-2*a*M1[i0]+a*a*C[i0])
		// The bins wholly within (-Δ/2, Δ/2) are [p, q): p is the first
		// whose support starts at or above -Δ/2, q the first ending above
		// Δ/2. Walking hi inward shrinks Δ, so p only rises, q only falls.
		half := (d.hiv(hiB) - a) / float64(levels-1) / 2
		p := sort.Search(n, func(j int) bool { return d.s[j] >= -half })
		q := sort.Search(n, func(j int) bool { return d.t[j] > half })
		for i1 := hiB; i1 >= hiA; i1-- {
			b := d.hiv(i1)
			step := (b - a) / float64(levels-1)
			half := step / 2
			for p < n && d.s[p] < -half {
				p++
			}
			for q > 0 && d.t[q-1] > half {
				q--
			}
			clipHi := max(0, (M2[n]-M2[i1])-2*b*(M1[n]-M1[i1])+b*b*(C[n]-C[i1]))
			inside := C[i1] - C[i0]
			var nearMass, near2 float64
			if np, nq := max(p, i0), min(q, i1); nq > np {
				nearMass, near2 = C[nq]-C[np], M2[nq]-M2[np]
			}
			e := clipLo + clipHi + near2 + step*step/12*max(0, inside-nearMass)
			if e < best {
				best, bestLo, bestHi = e, a, b
			}
		}
	}
	return bestLo, bestHi
}

// entropy returns the range minimizing KL(P || Q) in the TensorRT / MXNet
// way, over bin-aligned candidates [lo, hi] spanning at least `levels` bins:
// P is the histogram restricted to the range with the mass outside added to
// its first and last bins; Q splits the range into `levels` equal groups of
// bins, and spreads each group's mass (without the outliers) evenly over the
// group's bins where P is non-zero. Where P > 0 but Q = 0 (a group holding
// only outliers), Q gets 1e-4 of a count, as MXNet's smoothing does. The
// exact zeros form their own level in both (a quantizer keeps them exact).
//
// ReLU inputs search hi alone with lo = 0. Two-sided inputs alternate: best
// hi for the current lo, then best lo for that hi, until neither moves (at
// most 32 rounds), starting from [min, max]; each step costs O(levels) per
// candidate through prefix sums. Ties go to the widest range. When the data
// spans fewer bins than levels, the histogram is too coarse to tell and the
// result is [min, max].
func (d *dist) entropy(levels int, relu bool) (lo, hi float64) {
	bottom, top := d.loFirst(), d.hiLast()
	if relu {
		bottom = d.z
	}
	if top-bottom < levels {
		return d.lov(bottom), d.hiv(top)
	}
	i0, i1 := bottom, top
	i1 = d.bestHi(i0, top, levels)
	if !relu {
		for range 32 {
			n0 := d.bestLo(i1, bottom, levels)
			n1 := d.bestHi(n0, top, levels)
			if n0 == i0 && n1 == i1 {
				break
			}
			i0, i1 = n0, n1
		}
	}
	return d.lov(i0), d.hiv(i1)
}

func (d *dist) bestHi(i0, top, levels int) int {
	best, arg := math.Inf(1), top
	for i1 := top; i1 >= max(d.z, i0+levels); i1-- {
		if k := d.kl(i0, i1, levels); k < best {
			best, arg = k, i1
		}
	}
	return arg
}

func (d *dist) bestLo(i1, bottom, levels int) int {
	best, arg := math.Inf(1), bottom
	for i0 := bottom; i0 <= min(d.z, i1-levels); i0++ {
		if k := d.kl(i0, i1, levels); k < best {
			best, arg = k, i0
		}
	}
	return arg
}

// kl is KL(P || Q) for the candidate range of bins [i0, i1), normalized
// distributions. The groups are the real quantizer's cells: with step
// Δ = (hi-lo)/(levels-1) and zero point zp = round(-lo/Δ), level k (in
// [-zp, levels-1-zp]) takes the bins whose centers round to kΔ. Aligning
// the groups with the grid, rather than cutting [lo, hi] into equal runs of
// bins from lo, keeps the mass piled up around 0 inside one level for every
// candidate: otherwise where that pile falls between two groups changes
// from one candidate to the next and the divergence turns to noise.
func (d *dist) kl(i0, i1, levels int) float64 {
	const eps = 1e-4
	lo, hi := d.lov(i0), d.hiv(i1)
	step := (hi - lo) / float64(levels-1)
	if !(step > 0) {
		return math.Inf(1)
	}
	zp := math.Round(-lo / step)
	left, right := d.C[i0], d.C[d.n]-d.C[i1]
	var sum, sq float64 // Σ p·ln(p/q) and Σ q over bins with p > 0
	gs := i0
	for k := range levels {
		// The group ends at the first bin whose center reaches the next
		// cell, (k - zp + 1/2)Δ; the last group ends at i1.
		ge := i1
		if k < levels-1 {
			x := math.Ldexp((float64(k)-zp+0.5)*step, -d.exp) - 0.5
			ge = min(max(int(math.Ceil(x)-float64(d.start)), gs), i1)
		}
		if ge == gs {
			continue
		}
		mass := d.C[ge] - d.C[gs]
		nz := d.NZ[ge] - d.NZ[gs]
		plogp := d.CL[ge] - d.CL[gs]
		pm := mass
		// The edge bins of P carry the outliers.
		fix := func(j int, extra float64) {
			if extra == 0 || j < gs || j >= ge {
				return
			}
			c := d.c[j]
			if c > 0 {
				plogp -= c * math.Log(c)
			} else {
				nz++
			}
			p := c + extra
			plogp += p * math.Log(p)
			pm += extra
		}
		fix(i0, left)
		fix(i1-1, right)
		gs = ge
		if nz == 0 {
			continue
		}
		q := mass / float64(nz)
		if q == 0 {
			q = eps
		}
		// Σ_j p_j ln(p_j/q) = Σ p ln p - ln q · Σ p.
		sum += plogp - pm*math.Log(q)
		sq += float64(nz) * q
	}
	sp := d.total
	if d.zeros > 0 {
		// The zeros' own level: p = q = zeros, adding 0 to sum.
		sq += d.zeros
	}
	if sq <= 0 {
		return math.Inf(1)
	}
	return sum/sp + math.Log(sq/sp)
}
