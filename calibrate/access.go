package calibrate

import (
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"github.com/rqtools/rq/model"
)

// Row access counts: how often the calibration rows look up each row of
// each embedding table, so that a table can keep its hottest rows at a
// higher precision than its cold tail.

const (
	// ExactMaxRows is the largest table counted exactly: one uint32 per
	// row, at most 4 MiB a table, allocated at the table's first lookup.
	ExactMaxRows = 1 << 20
	// MaxHot caps the rows a table lists in ranges.json ("hot"), and is
	// the capacity of the Space-Saving summary that counts a larger table
	// (65,536 entries of 16 bytes and a 2^17-slot index: 1.5 MiB).
	MaxHot = 1 << 16
)

// Test hooks: lowered by tests to force tables into summary mode and
// summaries into eviction on small data.
var (
	exactMaxRows int64 = ExactMaxRows
	hotCap             = MaxHot
)

// HotRow is a table row and its access count.
type HotRow struct {
	Row   int64
	Count uint64
}

// TableAccess is what calibration saw of one embedding table's rows.
//
// Exact (ErrorBound 0): HotRows lists every row looked up at least once with
// its exact count, and a row not listed was never looked up. Otherwise
// HotRows holds the rows with the largest counts, each count at least the
// row's true count and at most ErrorBound more, and a row not listed was
// looked up at most ErrorBound times; ErrorBound <= Lookups/MaxHot.
type TableAccess struct {
	Rows       int64  // the table's row count
	Lookups    uint64 // ids counted (every id of every bag, weights ignored)
	Exact      bool   // ErrorBound == 0
	ErrorBound uint64
	HotRows    []HotRow // by count descending, then row ascending
}

// TableAccess is the access counts of the table named name, when the
// document has them (ranges.json version 3 written by rq calibrate).
func (r *Ranges) TableAccess(name string) (*TableAccess, bool) {
	t, ok := r.Tables[name]
	return t, ok && t != nil
}

// Hot returns the hottest rows covering share (0..1) of the table's rows:
// the first ceil(share*Rows) rows of HotRows (fewer when it is shorter: the
// rows beyond were seen too rarely to list, or never), in HotRows order, by
// count descending and then row ascending. A mixed-precision table keeps
// these rows at its high precision. share <= 0 (or NaN) gives none.
func (t *TableAccess) Hot(share float64) []int64 {
	if !(share > 0) {
		return nil
	}
	n := len(t.HotRows)
	if share < 1 {
		if k := math.Ceil(share * float64(t.Rows)); k < float64(n) {
			n = int(k)
		}
	}
	out := make([]int64, n)
	for i := range n {
		out[i] = t.HotRows[i].Row
	}
	return out
}

// hotLess orders hot rows by count descending, then row ascending.
func hotLess(a, b HotRow) int {
	if c := cmp.Compare(b.Count, a.Count); c != 0 {
		return c
	}
	return cmp.Compare(a.Row, b.Row)
}

// truncate keeps the rows of h (sorted by hotLess) that fit in k by the
// mergeable-summaries rule (below): when h has more than k rows, s is the
// (k+1)-th largest count and every row counting s or less is dropped. It
// returns the kept rows and s (0 when nothing was dropped).
func truncate(h []HotRow, k int) ([]HotRow, uint64) {
	if len(h) <= k {
		return h, 0
	}
	s := h[k].Count
	n := k
	for n > 0 && h[n-1].Count <= s {
		n--
	}
	return h[:n], s
}

// mergeAccess combines the counts of one table over two disjoint sets of
// rows. Exact counts add. Summaries merge by the rule for Misra-Gries /
// Space-Saving summaries of Agarwal, Cormode, Huang, Phillips, Wei and Yi,
// "Mergeable Summaries" (PODS 2012, §3; ACM TODS 38(4), 2013): take each
// summary's counts as Misra-Gries under-estimates (a Space-Saving count
// minus the summary's error bound), add the counts of common rows, and
// when more than k rows remain subtract the (k+1)-th largest count s from
// every count and drop those left at 0 or less. Every count then
// under-estimates by at most Δa + Δb + s, which stays within
// Lookups/k, as the paper shows; the result is written back in
// Space-Saving form (the under-estimates plus that bound). Two exact
// tables whose sum fits in k rows stay exact, and the merge of exact
// shards is the unsharded count exactly (a truncation too: the same top
// rows, s the same (k+1)-th count).
func mergeAccess(a, b *TableAccess, k int) (*TableAccess, error) {
	if a.Rows != b.Rows {
		return nil, fmt.Errorf("%d rows in one and %d in the other", a.Rows, b.Rows)
	}
	look, c := bits.Add64(a.Lookups, b.Lookups, 0)
	bound, c2 := bits.Add64(a.ErrorBound, b.ErrorBound, 0)
	if c|c2 != 0 {
		return nil, fmt.Errorf("lookups add up to more than 2^64")
	}
	sum := map[int64]uint64{}
	for _, t := range []*TableAccess{a, b} {
		for _, h := range t.HotRows {
			if mg := h.Count - t.ErrorBound; mg > 0 { // validated: Count >= ErrorBound
				sum[h.Row] += mg // cannot wrap: the under-estimates sum to at most Lookups
			}
		}
	}
	hot := make([]HotRow, 0, len(sum))
	for row, n := range sum {
		hot = append(hot, HotRow{row, n})
	}
	slices.SortFunc(hot, hotLess)
	hot, s := truncate(hot, k)
	if bound, c = bits.Add64(bound, s, 0); c != 0 {
		return nil, fmt.Errorf("error bound beyond 2^64")
	}
	for i := range hot {
		if hot[i].Count, c = bits.Add64(hot[i].Count-s, bound, 0); c != 0 {
			return nil, fmt.Errorf("counts beyond 2^64")
		}
	}
	return &TableAccess{Rows: a.Rows, Lookups: look, Exact: bound == 0, ErrorBound: bound, HotRows: slices.Clip(hot)}, nil
}

// accessCounter counts the row lookups of every table of a network.
type accessCounter struct {
	tables []*tableCounter
}

type tableCounter struct {
	name    string
	rows    int64
	lookups uint64
	exact   []uint32         // exact mode: count per row, from the first lookup
	over    map[int64]uint64 // exact mode: the multiples of 2^32 a row's uint32 wrapped
	ss      *spaceSaving     // summary mode (rows > exactMaxRows)
}

func newAccessCounter(net *model.Network) (*accessCounter, error) {
	c := &accessCounter{}
	seen := map[string]bool{}
	for i, t := range net.Tables {
		if t.Name == "" || seen[t.Name] {
			return nil, fmt.Errorf("embedding table %d is named %q, which is empty or not unique: access counts are keyed by table name", i, t.Name)
		}
		seen[t.Name] = true
		c.tables = append(c.tables, &tableCounter{name: t.Name, rows: t.Rows})
	}
	return c, nil
}

// count adds every id of b's bags, in row order (so a summary, which
// depends on the order, is the same for any batch size or thread count).
func (c *accessCounter) count(b *model.Batch) error {
	if len(b.Indices) != len(c.tables) {
		return fmt.Errorf("rows from %d: the batch has %d sparse features, the model %d tables", b.Row, len(b.Indices), len(c.tables))
	}
	for ti, tc := range c.tables {
		for j, id := range b.Indices[ti] {
			if id < 0 || id >= tc.rows {
				return fmt.Errorf("rows from %d: table %s: id %d (index %d of the batch's bags): want 0..%d", b.Row, tc.name, id, j, tc.rows-1)
			}
			tc.add(id)
		}
	}
	return nil
}

func (tc *tableCounter) add(id int64) {
	tc.lookups++
	if tc.rows > exactMaxRows {
		if tc.ss == nil {
			tc.ss = newSpaceSaving(hotCap)
		}
		tc.ss.add(id)
		return
	}
	if tc.exact == nil {
		tc.exact = make([]uint32, tc.rows)
	}
	if tc.exact[id] == math.MaxUint32 {
		// A row looked up 2^32 times: carry into a map, never used on
		// real calibration sets, so the array stays 4 bytes a row.
		if tc.over == nil {
			tc.over = map[int64]uint64{}
		}
		tc.over[id] += 1 << 32
		tc.exact[id] = 0
		return
	}
	tc.exact[id]++
}

// access is the table's counts as stored: exact counts truncated to
// hotCap rows by the merge rule (so a merge of exact shards gives the same
// document), or the summary's rows.
func (tc *tableCounter) access() *TableAccess {
	t := &TableAccess{Rows: tc.rows, Lookups: tc.lookups}
	var hot []HotRow
	switch {
	case tc.ss != nil:
		hot, t.ErrorBound = tc.ss.rows()
	case tc.exact != nil:
		for row, n := range tc.exact {
			if n != 0 || tc.over[int64(row)] != 0 {
				hot = append(hot, HotRow{int64(row), uint64(n) + tc.over[int64(row)]})
			}
		}
	}
	slices.SortFunc(hot, hotLess)
	hot, t.ErrorBound = truncateBound(hot, t.ErrorBound)
	t.HotRows, t.Exact = slices.Clip(hot), t.ErrorBound == 0
	if t.HotRows == nil {
		t.HotRows = []HotRow{}
	}
	return t
}

// truncateBound truncates exact counts to hotCap rows, the dropped count
// becoming the bound; a summary (bound > 0 or at most hotCap rows) is kept.
func truncateBound(hot []HotRow, bound uint64) ([]HotRow, uint64) {
	if bound != 0 {
		return hot, bound
	}
	return truncate(hot, hotCap)
}

// tables is every table's counts, keyed by name.
func (c *accessCounter) access() map[string]*TableAccess {
	out := make(map[string]*TableAccess, len(c.tables))
	for _, tc := range c.tables {
		out[tc.name] = tc.access()
	}
	return out
}

// spaceSaving is the Space-Saving heavy-hitters summary (Metwally, Agrawal
// and El Abbadi, "Efficient Computation of Frequent and Top-k Elements in
// Data Streams", ICDT 2005): k counters; a monitored row's counter counts
// up; a new row takes the smallest counter m when all k are in use and
// counts from m+1. Each count over-estimates its row's by at most m, and
// an unmonitored row was seen at most m times. The counters are a min-heap
// (1 MiB at k = 65,536) indexed by an open-addressing table of heap
// positions (2k int32 slots): no allocation after construction.
type spaceSaving struct {
	heap    []HotRow
	k       int
	slots   []int32 // heap position + 1, 0 empty; linear probing
	shift   uint
	evicted bool
}

func newSpaceSaving(k int) *spaceSaving {
	n := 1
	for n < 2*k {
		n <<= 1
	}
	return &spaceSaving{heap: make([]HotRow, 0, k), k: k, slots: make([]int32, n), shift: uint(64 - bits.TrailingZeros(uint(n)))}
}

func (s *spaceSaving) hash(row int64) int {
	return int((uint64(row) * 0x9E3779B97F4A7C15) >> s.shift)
}

// slot finds the slot holding heap position pos+1 for row, or the empty
// slot where row would go.
func (s *spaceSaving) find(row int64) (slot int, found bool) {
	mask := len(s.slots) - 1
	for i := s.hash(row); ; i = (i + 1) & mask {
		v := s.slots[i]
		if v == 0 {
			return i, false
		}
		if s.heap[v-1].Row == row {
			return i, true
		}
	}
}

// slotOf is the slot pointing at heap position pos, holding row.
func (s *spaceSaving) slotOf(row int64, pos int) int {
	mask := len(s.slots) - 1
	for i := s.hash(row); ; i = (i + 1) & mask {
		if int(s.slots[i]) == pos+1 {
			return i
		}
	}
}

// remove empties slot i, shifting later entries of its probe run back
// (linear probing's deletion without tombstones).
func (s *spaceSaving) remove(i int) {
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != 0; j = (j + 1) & mask {
		h := s.hash(s.heap[s.slots[j]-1].Row)
		// Entry j stays when its home h lies cyclically in (i, j].
		if (i < j && i < h && h <= j) || (i > j && (h > i || h <= j)) {
			continue
		}
		s.slots[i] = s.slots[j]
		i = j
	}
	s.slots[i] = 0
}

func (s *spaceSaving) swap(a, b int) {
	sa, sb := s.slotOf(s.heap[a].Row, a), s.slotOf(s.heap[b].Row, b)
	s.heap[a], s.heap[b] = s.heap[b], s.heap[a]
	s.slots[sa], s.slots[sb] = int32(b+1), int32(a+1)
}

func (s *spaceSaving) less(a, b int) bool { return s.heap[a].Count < s.heap[b].Count }

func (s *spaceSaving) down(i int) {
	n := len(s.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.swap(i, m)
		i = m
	}
}

func (s *spaceSaving) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			return
		}
		s.swap(i, p)
		i = p
	}
}

func (s *spaceSaving) add(row int64) {
	slot, found := s.find(row)
	if found {
		i := int(s.slots[slot] - 1)
		s.heap[i].Count++
		s.down(i)
		return
	}
	if len(s.heap) < s.k {
		s.heap = append(s.heap, HotRow{row, 1})
		s.slots[slot] = int32(len(s.heap))
		s.up(len(s.heap) - 1)
		return
	}
	// Evict the smallest counter (the heap's root) for row.
	s.evicted = true
	s.remove(s.slotOf(s.heap[0].Row, 0))
	s.heap[0] = HotRow{row, s.heap[0].Count + 1}
	slot, _ = s.find(row)
	s.slots[slot] = 1
	s.down(0)
}

// rows is the monitored rows and the summary's error bound: the smallest
// counter once a row has been evicted, 0 before (the counts are exact).
func (s *spaceSaving) rows() ([]HotRow, uint64) {
	var bound uint64
	if s.evicted && len(s.heap) > 0 {
		bound = s.heap[0].Count
	}
	return slices.Clone(s.heap), bound
}

// validateTable checks a table's counts as Read does: rows within the
// table, listed once each, in hotLess order, at most MaxHot of them, and
// counts consistent with lookups and the error bound (see TableAccess).
func (r *Ranges) validateTable(name string, t *TableAccess) error {
	at := fmt.Sprintf("tables[%q]", name)
	bad := func(format string, args ...any) error {
		return r.errorf("", "%s%s", at, fmt.Sprintf(format, args...))
	}
	switch {
	case name == "":
		return bad(": empty table name")
	case t == nil:
		return bad(": null: want an object")
	case t.Rows < 1:
		return bad(".rows: %d, want at least 1", t.Rows)
	case len(t.HotRows) > MaxHot:
		return bad(".hot: %d rows, want at most %d", len(t.HotRows), MaxHot)
	case int64(len(t.HotRows)) > t.Rows:
		return bad(".hot: %d rows listed, but the table has %d", len(t.HotRows), t.Rows)
	case t.Exact != (t.ErrorBound == 0):
		return bad(": exact is %v with error_bound %d: want exact true exactly when error_bound is 0", t.Exact, t.ErrorBound)
	case t.ErrorBound > t.Lookups:
		return bad(".error_bound: %d, more than the %d lookups", t.ErrorBound, t.Lookups)
	}
	var sum uint64
	rows := make([]int64, len(t.HotRows))
	for i, h := range t.HotRows {
		switch {
		case h.Row < 0 || h.Row >= t.Rows:
			return bad(".hot[%d]: row %d, want 0..%d", i, h.Row, t.Rows-1)
		case h.Count == 0 || h.Count < t.ErrorBound:
			return bad(".hot[%d]: count %d, want at least max(1, error_bound %d)", i, h.Count, t.ErrorBound)
		case i > 0 && hotLess(t.HotRows[i-1], h) >= 0:
			return bad(".hot[%d]: [%d, %d] after [%d, %d]: want counts non-increasing, rows of equal counts increasing", i, h.Row, h.Count, t.HotRows[i-1].Row, t.HotRows[i-1].Count)
		}
		// The counts less the bound under-estimate the true counts, which
		// sum to lookups (exactly so for an exact table).
		var c uint64
		if sum, c = bits.Add64(sum, h.Count-t.ErrorBound, 0); c != 0 || sum > t.Lookups {
			return bad(".hot: the counts (less error_bound %d) add up to more than the %d lookups", t.ErrorBound, t.Lookups)
		}
		rows[i] = h.Row
	}
	if t.Exact && sum != t.Lookups {
		return bad(": an exact table's hot counts must add up to its lookups: %d, lookups %d", sum, t.Lookups)
	}
	slices.Sort(rows)
	for i := 1; i < len(rows); i++ {
		if rows[i] == rows[i-1] {
			return bad(".hot: row %d listed twice", rows[i])
		}
	}
	return nil
}

// parseHot decodes a "hot" array, [[row, count], ...], strictly: JSON
// whitespace, non-negative integers without sign, fraction or exponent,
// at most MaxHot pairs (so a hostile file cannot make it allocate more).
func parseHot(data []byte) ([]HotRow, error) {
	p := 0
	ws := func() {
		for p < len(data) && (data[p] == ' ' || data[p] == '\t' || data[p] == '\n' || data[p] == '\r') {
			p++
		}
	}
	expect := func(c byte) error {
		ws()
		if p >= len(data) || data[p] != c {
			return fmt.Errorf("at byte %d: want %q", p, c)
		}
		p++
		return nil
	}
	num := func() (uint64, error) {
		ws()
		start := p
		var v uint64
		for p < len(data) && data[p] >= '0' && data[p] <= '9' {
			hi, lo := bits.Mul64(v, 10)
			v = lo + uint64(data[p]-'0')
			if hi != 0 || v < lo {
				return 0, fmt.Errorf("at byte %d: number beyond 2^64", start)
			}
			p++
		}
		if p == start || (data[start] == '0' && p-start > 1) || (p < len(data) && (data[p] == '.' || data[p] == 'e' || data[p] == 'E')) {
			return 0, fmt.Errorf("at byte %d: want a non-negative integer", start)
		}
		return v, nil
	}
	if err := expect('['); err != nil {
		return nil, err
	}
	hot := []HotRow{}
	ws()
	if p < len(data) && data[p] == ']' {
		p++
	} else {
		for {
			if len(hot) == MaxHot {
				return nil, fmt.Errorf("more than %d rows", MaxHot)
			}
			if err := expect('['); err != nil {
				return nil, err
			}
			row, err := num()
			if err != nil {
				return nil, err
			}
			if row > math.MaxInt64 {
				return nil, fmt.Errorf("row %d beyond 2^63", row)
			}
			if err := expect(','); err != nil {
				return nil, err
			}
			n, err := num()
			if err != nil {
				return nil, err
			}
			if err := expect(']'); err != nil {
				return nil, fmt.Errorf("%w (each entry is [row, count])", err)
			}
			hot = append(hot, HotRow{int64(row), n})
			ws()
			if p < len(data) && data[p] == ']' {
				p++
				break
			}
			if err := expect(','); err != nil {
				return nil, err
			}
		}
	}
	if ws(); p != len(data) {
		return nil, fmt.Errorf("at byte %d: data after the array", p)
	}
	return slices.Clip(hot), nil
}
