package kernels

import (
	"fmt"
	"math/bits"
	"strconv"

	"github.com/rqtools/rq/precision"
)

// Mixed-precision tables (issue 15): a table whose hottest rows (by the
// calibration rows' lookups) are stored at one precision and the rest at
// another, each part a table of its own (row-wise or MX), and one bag
// kernel over both:
//
//	hot  [H, ...]         rows hotRows[0] < hotRows[1] < ... of the table, in that order
//	cold [Rows-H, ...]    every other row, in id order
//
// Row id goes to the hot part at index rank(id) (the hot rows before it)
// when it is hot, else to the cold part at index id - rank(id). The hot
// set is a bitmap with a rank directory, built when the table is made:
// one bit a row in 64-bit words, each beside the count of hot rows before
// it (a uint32, padded: 16 bytes a word, so one lookup reads one cache
// line, where separate arrays of words and counts took two; in a table
// beyond the caches those lines come from memory too). A lookup reads a
// word and its count and popcounts the word's bits below the row. In-use
// memory beyond the two parts is therefore 1/4 byte a row (2^20 rows: 256
// KiB), whatever the hot share; a table of 2^32 hot rows or more is
// refused (calibration lists at most 65,536 a table).

// mixedAhead is how many lookups ahead Pool's Go loop (a table with an MX
// part, or no assembly) resolves and prefetches rows; the assembly that
// pools tables of two row-wise parts goes as far as the row-wise bags
// (mixedPrefetchLines).
const mixedAhead = 16

// mixedPrefetchBytes is the table size from which rows are prefetched (by
// Pool and Prefetch): a smaller table stays in a core's L2 (1 MiB on Zen
// 4) once read, and prefetching it only costs the lookups' id map twice
// (a third of the pooling time on criteo's tables, measured).
const mixedPrefetchBytes = 1 << 20

// MixedBagTable is a mixed-precision embedding table: Hot holds the rows
// HotRows lists (ascending ids), Cold every other row in id order, each a
// *BagTable or an *MXBagTable of Dim values a row. Make it with
// NewMixedBagTable (which builds the id map); its Pool method has the
// signature of the model's bag kernels.
//
// The pooling arithmetic is the fp32 bag's on each row as its part
// decodes it (DequantizeRows): bag indices in order, o[j] = o[j] +
// float32(w·v[j]) (o[j] + v[j] without weights), mean dividing once at the
// end. So a mixed table pools bit for bit what EmbeddingBag(TableF32)
// pools from its DequantizeRows, on every implementation, and the
// simulated (fake-quant) model is exact for it. For a row-wise part that
// is not the row-wise bag's own fma(w·scale, q, o + w·bias) (which rounds
// once per element where this rounds the decoded value, then the sum):
// the two differ in the last bits of a pooled value, never more.
type MixedBagTable struct {
	Rows int64
	Dim  int
	// Hot and Cold are the parts: [hot rows, Dim] and [Rows-hot rows, Dim].
	Hot, Cold RowTable
	// Mean selects mean pooling instead of sum.
	Mean bool

	nHot      int64
	idmap     []mixedWord // word id/64 of the bitmap and its rank
	hot, cold mixedPart
	prefetch  bool // the parts are large enough to prefetch from
}

// mixedWord is 64 rows of a mixed table's id map: bit id%64 of bits is
// set when row id is hot, and rank hot rows come before the word's first.
type mixedWord struct {
	bits uint64
	rank uint32
	_    uint32
}

// mixedPart is a part digested for the pooling loop: its storage and
// strides, so the loop does not go through the RowTable interface.
type mixedPart struct {
	rw     TableFormat // the row-wise format, or 0 for an MX part
	mx     MXFormat
	data   []byte // row-wise rows, or MX codes
	scales []byte // MX scales
	rb, ns int    // bytes a row of data, of scales
}

// MixedHotIDBytes is the stored size of one hot row id of a table of rows
// rows: the file's hot_rows tensor is I32 when every id fits (rows <=
// 2^31), else I64.
func MixedHotIDBytes(rows int64) int {
	if rows <= 1<<31 {
		return 4
	}
	return 8
}

// CheckHotRows reports the first fault of a hot row list for a table of
// rows rows: ids must be in [0, rows) and strictly increasing (so unique).
// The error says the position and the ids.
func CheckHotRows(rows int64, hot []int64) error {
	if int64(len(hot)) > rows {
		return fmt.Errorf("%d hot rows in a table of %d rows", len(hot), rows)
	}
	for i, id := range hot {
		switch {
		case id < 0 || id >= rows:
			return fmt.Errorf("hot row %d is id %d, outside the table's rows 0..%d", i, id, rows-1)
		case i > 0 && id <= hot[i-1]:
			what := "not increasing"
			if id == hot[i-1] {
				what = "listed twice"
			}
			return fmt.Errorf("hot row %d is id %d after id %d: %s (hot rows are sorted ascending, each once)", i, id, hot[i-1], what)
		}
	}
	return nil
}

// NewMixedBagTable checks the parts against the hot rows and builds the
// id map. hot must hold len(hotRows) rows and cold rows-len(hotRows), both
// of dim values, whole, and each a *BagTable or an *MXBagTable (a part is
// never mixed itself). hotRows is not kept (HotRows rebuilds it).
func NewMixedBagTable(rows int64, dim int, hotRows []int64, hot, cold RowTable) (*MixedBagTable, error) {
	if rows < 0 || dim < 1 {
		return nil, fmt.Errorf("mixed embedding table: bad shape %d x %d", rows, dim)
	}
	if err := CheckHotRows(rows, hotRows); err != nil {
		return nil, fmt.Errorf("mixed embedding table: %w", err)
	}
	if int64(len(hotRows)) >= 1<<32 {
		return nil, fmt.Errorf("mixed embedding table: %d hot rows, want fewer than 2^32", len(hotRows))
	}
	t := &MixedBagTable{Rows: rows, Dim: dim, Hot: hot, Cold: cold, nHot: int64(len(hotRows))}
	for _, p := range []struct {
		name string
		rt   RowTable
		rows int64
		dst  *mixedPart
	}{{"hot", hot, t.nHot, &t.hot}, {"cold", cold, rows - t.nHot, &t.cold}} {
		if p.rt == nil {
			return nil, fmt.Errorf("mixed embedding table: no %s part", p.name)
		}
		r, d := p.rt.Shape()
		if r != p.rows || d != dim || !p.rt.Whole() {
			return nil, fmt.Errorf("mixed embedding table: %s part is %d x %d (whole %v), want %d x %d", p.name, r, d, p.rt.Whole(), p.rows, dim)
		}
		mp, ok := digest(p.rt, dim)
		if !ok {
			return nil, fmt.Errorf("mixed embedding table: %s part is a %T; want a row-wise or MX table", p.name, p.rt)
		}
		*p.dst = mp
	}
	t.prefetch = hot.Bytes()+cold.Bytes() >= mixedPrefetchBytes
	words := (rows + 63) / 64
	t.idmap = make([]mixedWord, words)
	for _, id := range hotRows {
		t.idmap[id>>6].bits |= 1 << (uint(id) & 63)
	}
	var n uint32
	for w := range t.idmap {
		t.idmap[w].rank = n
		n += uint32(bits.OnesCount64(t.idmap[w].bits))
	}
	return t, nil
}

// digest is the pooling loop's view of a part: false when it is neither
// a row-wise nor an MX table.
func digest(rt RowTable, dim int) (mixedPart, bool) {
	switch k := rt.(type) {
	case *BagTable:
		return mixedPart{rw: k.Format, data: k.Data, rb: k.Format.RowBytes(dim)}, true
	case *MXBagTable:
		return mixedPart{mx: k.Format, data: k.Codes, scales: k.Scales, rb: MXCodeBytes(k.Format, dim), ns: MXScales(dim)}, true
	}
	return mixedPart{}, false
}

// Refresh makes the table read its parts' storage again, after a caller
// replaced it (modelio moves a loaded table's bytes onto huge pages by
// setting a part's Data, Codes or Scales to a copy). Not safe while the
// table is pooling.
func (t *MixedBagTable) Refresh() {
	t.hot, _ = digest(t.Hot, t.Dim)
	t.cold, _ = digest(t.Cold, t.Dim)
	t.prefetch = t.Hot.Bytes()+t.Cold.Bytes() >= mixedPrefetchBytes
}

// locate maps a row id (in range) to its part and index there.
func (t *MixedBagTable) locate(id int64) (*mixedPart, int) {
	e := &t.idmap[id>>6]
	x := e.bits
	bit := uint(id) & 63
	r := int64(e.rank) + int64(bits.OnesCount64(x&(1<<bit-1)))
	if x>>bit&1 != 0 {
		return &t.hot, int(r)
	}
	return &t.cold, int(id - r)
}

// IsHot reports whether row id (in range) is in the hot part.
func (t *MixedBagTable) IsHot(id int64) bool { return t.idmap[id>>6].bits>>(uint(id)&63)&1 != 0 }

// HotCount is the number of hot rows.
func (t *MixedBagTable) HotCount() int64 { return t.nHot }

// HotRows lists the hot rows' ids, ascending (rebuilt from the bitmap).
func (t *MixedBagTable) HotRows() []int64 {
	out := make([]int64, 0, t.nHot)
	for w, e := range t.idmap {
		for x := e.bits; x != 0; {
			b := bits.TrailingZeros64(x)
			out = append(out, int64(w)*64+int64(b))
			x &= x - 1
		}
	}
	return out
}

// Precision is precision.Mixed: with Bytes and Pool it makes the table a
// model.BagKernel.
func (t *MixedBagTable) Precision() precision.Precision { return precision.Mixed }

// partPrecision is a part's precision (int8, mxfp4).
func partPrecision(rt RowTable) precision.Precision {
	switch k := rt.(type) {
	case *BagTable:
		return k.Format.Precision()
	case *MXBagTable:
		return k.Format.Precision()
	}
	return 0
}

// HotPrecision and ColdPrecision are the parts' precisions.
func (t *MixedBagTable) HotPrecision() precision.Precision  { return partPrecision(t.Hot) }
func (t *MixedBagTable) ColdPrecision() precision.Precision { return partPrecision(t.Cold) }

// TableLabel names the table in reports: "mixed(int8 5% / int2)", the hot
// precision, the share of rows hot (3 significant digits) and the cold
// precision.
func (t *MixedBagTable) TableLabel() string {
	share := 0.0
	if t.Rows > 0 {
		share = 100 * float64(t.nHot) / float64(t.Rows)
	}
	return fmt.Sprintf("mixed(%s %s%% / %s)", t.HotPrecision(), strconv.FormatFloat(share, 'g', 3, 64), t.ColdPrecision())
}

// Bytes is the table as stored: both parts and the hot row ids
// (MixedHotIDBytes each). The bitmap and rank directory are not stored
// (they are rebuilt from the ids when the table is made) and are not
// counted; they take 1/4 byte a row of memory in use (MapBytes).
func (t *MixedBagTable) Bytes() int64 {
	return t.Hot.Bytes() + t.Cold.Bytes() + t.nHot*int64(MixedHotIDBytes(t.Rows))
}

// MapBytes is the memory of the id map (bitmap and rank directory), in
// use but not stored.
func (t *MixedBagTable) MapBytes() int64 { return 16 * int64(len(t.idmap)) }

// Shape is the table's rows and dimension.
func (t *MixedBagTable) Shape() (int64, int) { return t.Rows, t.Dim }

// Whole reports whether both parts hold all their rows.
func (t *MixedBagTable) Whole() bool {
	if t.Dim < 1 || t.Hot == nil || t.Cold == nil || t.idmap == nil && t.Rows > 0 {
		return false
	}
	hr, hd := t.Hot.Shape()
	cr, cd := t.Cold.Shape()
	return t.Hot.Whole() && t.Cold.Whole() && hr == t.nHot && cr == t.Rows-t.nHot && hd == t.Dim && cd == t.Dim
}

// DequantizeRows writes rows [r0, r0+n) into dst (n·Dim floats), each row
// as its part's DequantizeRows decodes it: what Pool adds for it. Runs of
// rows in one part go to that part in one call. It panics outside the
// table.
func (t *MixedBagTable) DequantizeRows(r0 int64, n int, dst []float32) {
	if r0 < 0 || n < 0 || r0+int64(n) > t.Rows {
		panic(fmt.Sprintf("kernels.MixedBagTable.DequantizeRows: rows [%d, %d) of %d", r0, r0+int64(n), t.Rows))
	}
	d := t.Dim
	for i := 0; i < n; {
		id := r0 + int64(i)
		hot := t.IsHot(id)
		j := i + 1
		for j < n && t.IsHot(r0+int64(j)) == hot {
			j++
		}
		p, k := t.locate(id)
		part := t.Cold
		if p == &t.hot {
			part = t.Hot
		}
		part.DequantizeRows(int64(k), j-i, dst[i*d:j*d])
		i = j
	}
}

// Pool pools bags [lo, hi) into out with the conventions of EmbeddingBag:
// it returns the position in indices of the first id outside [0, Rows)
// (nothing written), or -1, and panics on inconsistent offsets, weights or
// output sizes. The arithmetic is the fp32 bag's on decoded rows (see
// MixedBagTable). Safe for concurrent calls on disjoint output rows.
func (t *MixedBagTable) Pool(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) int {
	checkBagArgs(TableF32, nil, 0, t.Dim, indices, offsets, weights, out, ldo, lo, hi)
	if lo == hi {
		return -1
	}
	p0, p1 := int(offsets[lo]), int(offsets[hi])
	for p, ix := range indices[p0:p1] {
		if ix < 0 || ix >= t.Rows {
			return p0 + p
		}
	}
	if t.poolSIMD(indices, offsets, weights, out, ldo, lo, hi) {
		if t.Mean {
			bagMean(t.Dim, offsets, out, ldo, lo, hi)
		}
		return -1
	}
	// Each lookup is resolved (part and index) mixedAhead lookups before
	// it is pooled, and its row prefetched then, so that up to mixedAhead
	// rows are on their way from memory while rows are decoded: one at a
	// time, a lookup into a table beyond the caches waits for DRAM (and a
	// TLB walk) alone. ring holds each resolved lookup as index<<1 | hot.
	if !t.prefetch {
		t.poolNear(indices, offsets, weights, out, ldo, lo, hi)
		return -1
	}
	var ring [2 * mixedAhead]int64
	next := p0 // the next lookup to resolve
	for next < min(p0+mixedAhead, p1) {
		ring[next%len(ring)] = t.resolve(indices[next])
		next++
	}
	dim := t.Dim
	for i := lo; i < hi; i++ {
		o := out[i*ldo : i*ldo+dim]
		clear(o)
		b0, b1 := int(offsets[i]), int(offsets[i+1])
		for p := b0; p < b1; p++ {
			if next < p1 {
				ring[next%len(ring)] = t.resolve(indices[next])
				next++
			}
			e := ring[p%len(ring)]
			part := &t.cold
			if e&1 != 0 {
				part = &t.hot
			}
			if weights != nil {
				part.accum(int(e>>1), weights[p], true, o)
			} else {
				part.accum(int(e>>1), 1, false, o)
			}
		}
		if t.Mean {
			bagMean(dim, offsets, out, ldo, i, i+1) // while the row is in cache
		}
	}
	return -1
}

// poolNear is Pool for a table that stays in cache: each lookup resolved
// as it is pooled, nothing prefetched.
func (t *MixedBagTable) poolNear(indices []int64, offsets []int32, weights []float32, out []float32, ldo int, lo, hi int) {
	dim := t.Dim
	for i := lo; i < hi; i++ {
		o := out[i*ldo : i*ldo+dim]
		clear(o)
		b0, b1 := int(offsets[i]), int(offsets[i+1])
		for p := b0; p < b1; p++ {
			part, r := t.locate(indices[p])
			if weights != nil {
				part.accum(r, weights[p], true, o)
			} else {
				part.accum(r, 1, false, o)
			}
		}
		if t.Mean {
			bagMean(dim, offsets, out, ldo, i, i+1) // while the row is in cache
		}
	}
}

// resolve locates row id (in range) for Pool, as index<<1 | hot, and
// prefetches its row.
func (t *MixedBagTable) resolve(id int64) int64 {
	part, r := t.locate(id)
	part.prefetch(r)
	if part == &t.hot {
		return int64(r)<<1 | 1
	}
	return int64(r) << 1
}

// Prefetch asks for the rows of bags [lo, hi) to be brought toward the
// core, each from its part (see PrefetchBags); a hint, harmless on any
// arguments.
func (t *MixedBagTable) Prefetch(indices []int64, offsets []int32, lo, hi int) {
	if !t.prefetch || t.Dim < 1 || lo < 0 || lo >= hi || hi >= len(offsets) || t.idmap == nil {
		return
	}
	p0, p1 := int(offsets[lo]), int(offsets[hi])
	if p0 < 0 || p1 > len(indices) || p0 >= p1 {
		return
	}
	for _, id := range indices[p0:p1] {
		if id >= 0 && id < t.Rows {
			part, r := t.locate(id)
			part.prefetch(r)
		}
	}
}

// prefetch asks for row r of the part (codes and scales for MX).
func (p *mixedPart) prefetch(r int) {
	if len(p.data) == 0 {
		return
	}
	one := [1]int64{int64(r)}
	prefetchBagRows(p.data, p.rb, one[:])
	if p.mx != 0 {
		prefetchBagRows(p.scales, p.ns, one[:])
	}
}

// accum adds w times row r of the part, as its DequantizeRows decodes it,
// to o (len dim): o[j] += float32(w·v[j]) (o[j] += v[j] unweighted: w is
// then 1 and float32(1·v) is v). The explicit conversions keep the
// compiler from fusing the multiply into the add.
func (p *mixedPart) accum(r int, w float32, weighted bool, o []float32) {
	if p.mx != 0 {
		codes, scales := p.data[r*p.rb:r*p.rb+p.rb], p.scales[r*p.ns:r*p.ns+p.ns]
		if p.mx == MXFP4E2M1 && mixedSIMD {
			accumFP4(codes, scales, w, weighted, o)
			return
		}
		mxAccumRow(p.mx, codes, scales, w, weighted, o)
		return
	}
	row := p.data[r*p.rb : r*p.rb+p.rb]
	dim := len(o)
	switch p.rw {
	case TableF32, TableF16:
		// accumRow's fp32 and fp16 forms are the fp32 bag's already.
		accumRow(p.rw, row, dim, w, o)
		return
	}
	// The row-wise quantized value, as DequantizeRows computes it (an
	// embedding bag holding just that row): float32(scale·q + (0 + bias))
	// in double precision, the bias's -0 made +0 as 0 + bias does.
	sc, bi := rowScaleBias(p.rw, row, dim)
	s, b := float64(sc), float64(bi)
	if bi == 0 {
		b = 0
	}
	// Sub-byte codes take few values: each is decoded (and weighted) once
	// a row, the same float32(w·v) the loop below would compute per value.
	// With AVX-512 whole groups of 8 (int8) or 16 values go to the
	// assembly (the same operations), the rest to Go.
	j0 := 0
	switch p.rw {
	case TableQ8:
		if mixedSIMD && dim >= 8 {
			j0 = dim &^ 7
			mixedQ8(&o[0], &row[0], j0, s, b, w)
		}
		if !weighted {
			for j := j0; j < dim; j++ {
				o[j] += float32(s*float64(row[j]) + b)
			}
			return
		}
		for j := j0; j < dim; j++ {
			o[j] += float32(w * float32(s*float64(row[j])+b))
		}
	case TableQ4:
		if dim < 16 {
			for j := range o {
				q := row[j>>1] >> (uint(j&1) * 4) & 15
				o[j] += float32(w * float32(s*float64(q)+b))
			}
			return
		}
		var lut [16]float32
		for q := range lut {
			lut[q] = float32(w * float32(s*float64(q)+b))
		}
		if mixedSIMD {
			j0 = dim &^ 15
			mixedLUT4(&o[0], &row[0], j0, &lut, &mixedConsts)
		}
		full := dim / 2
		for g := j0 / 2; g < full; g++ {
			c := row[g]
			og := (*[2]float32)(o[2*g:])
			og[0] += lut[c&15]
			og[1] += lut[c>>4]
		}
		if dim&1 != 0 {
			o[dim-1] += lut[row[full]&15]
		}
	case TableQ2:
		var lut [16]float32 // 4 used; 16 for the assembly's table
		for q := range 4 {
			lut[q] = float32(w * float32(s*float64(q)+b))
		}
		if mixedSIMD && dim >= 16 {
			j0 = dim &^ 15
			mixedLUT2(&o[0], &row[0], j0, &lut, &mixedConsts)
		}
		full := dim / 4
		for g := j0 / 4; g < full; g++ {
			c := row[g]
			og := (*[4]float32)(o[4*g:])
			og[0] += lut[c&3]
			og[1] += lut[c>>2&3]
			og[2] += lut[c>>4&3]
			og[3] += lut[c>>6]
		}
		for j := 4 * full; j < dim; j++ {
			o[j] += lut[row[full]>>(uint(j&3)*2)&3]
		}
	}
}

// accumFP4 is mxAccumRow for mxfp4 with the assembly: per block of 32, the
// 16 values its codes decode to (weighted), then 16 at a time through
// mixedLUT4; the same float32 products as mxAccumRow.
func accumFP4(codes, scales []byte, w float32, weighted bool, o []float32) {
	t := (*[16]float32)(mxLUT[MXFP4E2M1])
	dim := len(o)
	full := dim &^ (MXBlock - 1)
	if full > 0 {
		// Whole blocks: the table and the lookups in the assembly (w = 1
		// unweighted: float32(1·v) is v).
		wt := w
		if !weighted {
			wt = 1
		}
		mixedFP4(&o[0], &codes[0], full, t, &scales[0], &mxScaleLUT, wt, &mixedConsts)
	}
	for b0 := full; b0 < dim; b0 += MXBlock {
		s := mxScaleLUT[scales[b0/MXBlock]]
		var lut [16]float32
		for q := range lut {
			v := float32(t[q] * s)
			if weighted {
				v = float32(w * v)
			}
			lut[q] = v
		}
		n := min(MXBlock, dim-b0)
		m := n &^ 15
		if m > 0 {
			mixedLUT4(&o[b0], &codes[b0/2], m, &lut, &mixedConsts)
		}
		for j := b0 + m; j < b0+n; j++ {
			o[j] += lut[codes[j>>1]>>(uint(j&1)*4)&15]
		}
	}
}

// MixedBagImpl names the mixed bag's implementation in use ("avx512-bags":
// whole bags in one assembly call when both parts are row-wise or mxfp4,
// a row at a time in Go with AVX-512 accumulators otherwise; or "go"), for
// diagnostics and for keying measurements of its speed (so a cost model
// measured with the earlier row-at-a-time "avx512" is measured again).
func MixedBagImpl() string {
	if mixedSIMD {
		return "avx512-bags"
	}
	return "go"
}
