package modelio

// A restricted unpickler for the pickles torch.save (and numpy inside it)
// writes. It is a small stack machine over the pickle opcodes of protocols
// 0-5 that builds plain Go values and never runs anything: a GLOBAL opcode is
// looked up in an allow-list of Go functions, and any name not on the list
// stops the load with an error naming it. Checkpoints come from strangers, and
// Python's own unpickler will call whatever a file names (os.system included),
// so we do not use a general-purpose unpickler.
//
// Hostile bytes must give an error, never a panic, a hang or unbounded memory:
// every pop is checked, every length is checked against the input before
// anything is allocated, and objects, allocations and work are charged
// against absolute budgets (budget.go): a budget that grew with the input
// would let a small zip that inflates to a huge pickle buy gigabytes. Values
// are charged what Go really spends on them (costs below), and the context
// is checked every few thousand opcodes so a load can be cancelled.
//
// Values the machine produces:
//
//	nil, bool, int64, *big.Int (beyond int64), float64, string, []byte,
//	pyTuple, *pyList, *pyDict (insertion ordered), *pySet,
//	*pyGlobal (an allow-listed global used as a value, e.g. torch.FloatStorage),
//	and whatever the allow-listed functions return (numpy dtypes and arrays,
//	torch storages and tensors, ...).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyTuple is an immutable Python tuple.
type pyTuple []any

// pyList is a Python list; a pointer, because APPEND mutates a list that the
// memo may also hold.
type pyList struct{ items []any }

// pyDict is a Python dict or collections.OrderedDict: keys keep insertion
// order (Python dicts do, and a state dict's order is the model's order).
type pyDict struct {
	keys, vals []any
	index      map[any]int // pyHashKey(key) -> position
	// state is what a BUILD opcode set on the object (OrderedDict pickles carry
	// torch's _metadata that way); kept for inspection, not interpreted.
	state any
}

// pySet is a Python set or frozenset; items keep insertion order so output is
// deterministic.
type pySet struct {
	items  []any
	index  map[any]struct{}
	frozen bool
}

// pyGlobal is an allow-listed global. call implements REDUCE and NEWOBJ
// (nil: the global is a plain value, such as a storage type or a dtype).
type pyGlobal struct {
	module, name string
	call         func(u *unpickler, args pyTuple) (any, error)
}

func (g *pyGlobal) String() string { return g.module + "." + g.name }

// pyBuilder is a value that accepts the BUILD opcode (Python's __setstate__).
type pyBuilder interface {
	pyBuild(u *unpickler, state any) error
}

// pickleError is a malformed pickle: the byte offset of the opcode at fault
// and what was wrong.
type pickleError struct {
	pos int
	op  byte
	msg string
}

func (e *pickleError) Error() string {
	return fmt.Sprintf("pickle opcode %s at byte %d: %s", opName(e.op), e.pos, e.msg)
}

// pickleGlobalError is a refused global: the pickle names a Python callable
// that is not on the allow-list, and we stop rather than guess at it.
type pickleGlobalError struct {
	module, name string
}

func (e *pickleGlobalError) Error() string {
	return fmt.Sprintf("pickle references global %s.%s; only torch tensor rebuild functions and plain data types are allowed (nothing in the file was executed)", e.module, e.name)
}

// pickleLimits bounds what one load may cost.
type pickleLimits struct {
	maxMarks   int   // open MARKs (nesting of containers under construction)
	maxDepth   int   // recursion depth of value walks (dict keys, conversions)
	maxObjects int64 // values pushed on the stack (each new value is pushed once)
	maxAlloc   int64 // bytes of values created, at the costs below
	maxWork    int64 // abstract work units (opcodes, bytes hashed, items copied)
}

// defaultPickleLimits are the documented budgets (budget.go); they do not
// depend on the input's size.
func defaultPickleLimits() pickleLimits {
	return pickleLimits{
		maxMarks:   4096,
		maxDepth:   200,
		maxObjects: MaxPickleObjects,
		maxAlloc:   MaxPickleValueBytes,
		maxWork:    MaxPickleSteps,
	}
}

// What values cost in Go memory (amd64, Go's allocation size classes),
// charged against maxAlloc. They are upper estimates: TestPickleCharges
// measures the heap each kind of value really takes and fails if the
// charge falls short.
const (
	// A stack slot: an interface value (16 bytes) in a slice that grows
	// by 1.25x, so its array is up to 1.25x the stack and, while append
	// copies it, the old array is live too.
	costSlot   = 32
	costBox8   = 8  // an int64 (beyond 0..255) or float64 boxed in an interface
	costString = 16 // a string header boxed in an interface (the bytes are charged too)
	costSlice  = 24 // a []byte or tuple header boxed in an interface
	costList   = 32 // a pyList
	costDict   = 80 // a pyDict; its hash index is allocated on the first key
	costSet    = 48 // a pySet, likewise
	costObject = 64 // any other value (a rebuilt tensor, a numpy dtype, ...)
	// A map's header and first group of 8 slots, allocated with its first
	// key (a dict's first entry costs this on top of costDictEntry).
	costMapFirst = 272
	// One dict entry: its key and value slots in two slices that grow by
	// doubling (so up to twice 2 x 16 bytes), and a hash slot of 24 bytes
	// in a table kept at most 7/8 full that also grows by doubling.
	costDictEntry = 128
	costSetEntry  = 96 // likewise, with a 16-byte hash slot and one slice
	costMemo      = 64 // a memo entry (map[uint64]any slot, with growth)
	costMark      = 16 // an open MARK (an int in a slice that grows by doubling)
	costItemCopy  = 32 // an item appended to a list (slice growth doubles it)
	costBigInt    = 64 // a big.Int's header, beyond its words
	costEncodedKy = 32 // a non-string dict key's encoded form, beyond its bytes
)

// unpickler is one load: the input, the machine state and its budgets.
type unpickler struct {
	data    []byte
	pos     int
	opPos   int
	op      byte
	stack   []any
	marks   []int // stack heights at each open MARK
	memo    map[uint64]any
	globals map[string]*pyGlobal
	// persistentLoad resolves PERSID/BINPERSID ids (torch storages); nil
	// refuses them.
	persistentLoad func(u *unpickler, pid any) (any, error)
	lim            pickleLimits
	alloc, work    int64
	objects        int64
	// ctx cancels the load; file and entry name the checkpoint and its
	// pickle in limit errors ("" for a bare pickle).
	ctx         context.Context
	file, entry string
}

// newUnpickler prepares a load of data resolving globals through globals
// ("module.name" keys).
func newUnpickler(data []byte, globals map[string]*pyGlobal) *unpickler {
	return &unpickler{
		data:    data,
		memo:    map[uint64]any{},
		globals: globals,
		lim:     defaultPickleLimits(),
		ctx:     context.Background(),
	}
}

// unpickle runs the machine to the STOP opcode and returns the value on top
// of the stack. Bytes after STOP are ignored, as Python does.
func unpickle(data []byte, globals map[string]*pyGlobal) (any, error) {
	return newUnpickler(data, globals).run()
}

func (u *unpickler) errf(format string, args ...any) error {
	return &pickleError{pos: u.opPos, op: u.op, msg: fmt.Sprintf(format, args...)}
}

// limitErr reports a passed budget, naming the file, the pickle and where
// in it the budget ran out.
func (u *unpickler) limitErr(what string, limit int64, unit string) error {
	file, entry := u.file, u.entry
	if file == "" {
		file = "pickle"
	}
	if entry == "" {
		entry = "the pickle"
	}
	return &LimitError{File: file, Limit: limit, Unit: unit,
		What: fmt.Sprintf("%s built by %s (at byte %d, opcode %s)", what, entry, u.opPos, opName(u.op))}
}

// charge accounts for n bytes of new values.
func (u *unpickler) charge(n int64) error {
	if n < 0 || n > u.lim.maxAlloc-u.alloc {
		return u.limitErr("the values", u.lim.maxAlloc, "bytes")
	}
	u.alloc += n
	return nil
}

// spend accounts for n units of work.
func (u *unpickler) spend(n int64) error {
	if n < 0 || n > u.lim.maxWork-u.work {
		return u.limitErr("the steps (opcodes, bytes hashed and items copied) needed for the values", u.lim.maxWork, "")
	}
	u.work += n
	return nil
}

// --- input ---

func (u *unpickler) readN(n uint64) ([]byte, error) {
	if n > uint64(len(u.data)-u.pos) {
		return nil, u.errf("needs %d bytes, only %d left", n, len(u.data)-u.pos)
	}
	b := u.data[u.pos : u.pos+int(n)]
	u.pos += int(n)
	return b, nil
}

func (u *unpickler) readUint(n int) (uint64, error) {
	b, err := u.readN(uint64(n))
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// readLine reads up to and excluding the next '\n' (protocol 0 arguments).
func (u *unpickler) readLine() ([]byte, error) {
	rest := u.data[u.pos:]
	for i, c := range rest {
		if c == '\n' {
			u.pos += i + 1
			return rest[:i], nil
		}
	}
	return nil, u.errf("argument line has no terminating newline")
}

// --- stack ---

// push puts a new value on the stack, counting it as an object and
// charging its slot and what boxing it in an interface allocates. Values
// built elsewhere (by a container opcode or an allow-listed function)
// have the rest of their cost charged there.
func (u *unpickler) push(v any) error {
	c := int64(costSlot)
	switch x := v.(type) {
	case nil, bool, *pyGlobal:
	case int64:
		if x < 0 || x > 255 { // Go boxes 0..255 without allocating
			c += costBox8
		}
	case float64:
		c += costBox8
	case string:
		c += costString
	case []byte, pyTuple:
		c += costSlice
	case *pyList:
		c += costList
	case *pyDict:
		c += costDict
	case *pySet:
		c += costSet
	case *big.Int:
		// charged with its words where it is decoded
	default:
		c += costObject
	}
	return u.pushRef(v, c)
}

// pushRef puts a value on the stack at cost c; with c = costSlot it pushes
// a value that exists already (DUP, GET): each push still counts as an
// object, so the stack itself stays within maxObjects slots.
func (u *unpickler) pushRef(v any, c int64) error {
	if u.objects >= u.lim.maxObjects {
		return u.limitErr("the objects", u.lim.maxObjects, "")
	}
	if err := u.charge(c); err != nil {
		return err
	}
	u.objects++
	u.stack = append(u.stack, v)
	return nil
}

// base is the lowest stack index the current frame may pop: a plain pop may
// not reach below the innermost open MARK.
func (u *unpickler) base() int {
	if len(u.marks) == 0 {
		return 0
	}
	return u.marks[len(u.marks)-1]
}

func (u *unpickler) pop() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, u.errf("stack underflow")
	}
	v := u.stack[len(u.stack)-1]
	u.stack[len(u.stack)-1] = nil
	u.stack = u.stack[:len(u.stack)-1]
	return v, nil
}

func (u *unpickler) top() (any, error) {
	if len(u.stack) <= u.base() {
		return nil, u.errf("stack underflow")
	}
	return u.stack[len(u.stack)-1], nil
}

// popMark returns the items pushed since the innermost MARK and removes them
// and the mark. The returned slice is a fresh copy: the stack's backing array
// is reused by later pushes.
func (u *unpickler) popMark() ([]any, error) {
	if len(u.marks) == 0 {
		return nil, u.errf("no MARK on the stack")
	}
	m := u.marks[len(u.marks)-1]
	u.marks = u.marks[:len(u.marks)-1]
	items := make([]any, len(u.stack)-m)
	copy(items, u.stack[m:])
	clear(u.stack[m:])
	u.stack = u.stack[:m]
	if err := u.spend(int64(len(items))); err != nil {
		return nil, err
	}
	return items, u.charge(16 * int64(len(items)))
}

// --- dict/set keys ---

// pyHashKey maps a hashable Python value to a comparable Go value so that
// keys equal in Python (1, 1.0 and True) are equal here. Tuples are encoded
// into a string; the encoding is capped, so a deep or wide tuple key costs a
// bounded amount however often it is reused.
func (u *unpickler) pyHashKey(k any) (any, error) {
	switch v := k.(type) {
	case string:
		return v, u.spend(int64(len(v)/16 + 1))
	case pyTuple:
		var sb strings.Builder
		if err := u.encodeKey(&sb, v, 0); err != nil {
			return nil, err
		}
		return pyTupleKey(sb.String()), nil
	}
	var sb strings.Builder
	if err := u.encodeKey(&sb, k, 0); err != nil {
		return nil, err
	}
	return pyScalarKey(sb.String()), nil
}

// pyTupleKey and pyScalarKey keep encoded keys apart from string keys.
type pyTupleKey string
type pyScalarKey string

const maxKeyBytes = 1024

func (u *unpickler) encodeKey(sb *strings.Builder, k any, depth int) error {
	if depth > u.lim.maxDepth || sb.Len() > maxKeyBytes {
		return u.errf("dict or set key too large or too deeply nested")
	}
	if err := u.spend(1); err != nil {
		return err
	}
	switch v := k.(type) {
	case nil:
		sb.WriteString("N;")
	case bool:
		if v {
			sb.WriteString("i1;")
		} else {
			sb.WriteString("i0;")
		}
	case int64:
		sb.WriteString("i")
		sb.WriteString(strconv.FormatInt(v, 10))
		sb.WriteString(";")
	case *big.Int:
		if sb.Len()+v.BitLen()/3 > maxKeyBytes {
			return u.errf("dict or set key too large")
		}
		sb.WriteString("i")
		sb.WriteString(v.String())
		sb.WriteString(";")
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			sb.WriteString("i")
			sb.WriteString(strconv.FormatInt(int64(v), 10))
			sb.WriteString(";")
		} else {
			sb.WriteString("f")
			sb.WriteString(strconv.FormatUint(math.Float64bits(v), 16))
			sb.WriteString(";")
		}
	case string:
		if sb.Len()+len(v) > maxKeyBytes {
			return u.errf("dict or set key too large")
		}
		sb.WriteString("s")
		sb.WriteString(strconv.Itoa(len(v)))
		sb.WriteString(":")
		sb.WriteString(v)
	case []byte:
		if sb.Len()+len(v) > maxKeyBytes {
			return u.errf("dict or set key too large")
		}
		sb.WriteString("b")
		sb.WriteString(strconv.Itoa(len(v)))
		sb.WriteString(":")
		sb.Write(v)
	case pyTuple:
		sb.WriteString("(")
		for _, x := range v {
			if err := u.encodeKey(sb, x, depth+1); err != nil {
				return err
			}
		}
		sb.WriteString(")")
	case *pySet:
		if !v.frozen {
			return u.errf("unhashable dict or set key of type set")
		}
		// frozenset equality ignores order: not worth modelling for keys;
		// identity is a safe approximation (no two keys are merged wrongly).
		fmt.Fprintf(sb, "F%p;", v)
	case *pyGlobal:
		sb.WriteString("g")
		sb.WriteString(v.String())
		sb.WriteString(";")
	default:
		return u.errf("unhashable or unsupported dict or set key of type %s", pyTypeName(k))
	}
	return nil
}

// newPyDict makes an empty dict. Its index is made with the first key: an
// empty map costs 48 bytes, and hostile pickles are made of empty dicts.
func newPyDict() *pyDict { return &pyDict{} }

// set assigns d[k] = v; a repeated key keeps its first position, as in Python.
func (u *unpickler) dictSet(d *pyDict, k, v any) error {
	hk, err := u.pyHashKey(k)
	if err != nil {
		return err
	}
	if i, ok := d.index[hk]; ok {
		d.vals[i] = v
		return nil
	}
	c := int64(costDictEntry) + keyCost(hk)
	if d.index == nil {
		c += costMapFirst
	}
	if err := u.charge(c); err != nil {
		return err
	}
	if d.index == nil {
		d.index = map[any]int{}
	}
	d.index[hk] = len(d.keys)
	d.keys = append(d.keys, k)
	d.vals = append(d.vals, v)
	return nil
}

// keyCost is what a hash key allocates beyond its slot: nothing for a
// string key (the dict shares the key's string), the encoded form for others.
func keyCost(hk any) int64 {
	switch k := hk.(type) {
	case pyTupleKey:
		return costEncodedKy + int64(len(k))
	case pyScalarKey:
		return costEncodedKy + int64(len(k))
	}
	return 0
}

// get looks up a string key.
func (d *pyDict) get(key string) (any, bool) {
	i, ok := d.index[key]
	if !ok {
		return nil, false
	}
	return d.vals[i], true
}

func (d *pyDict) len() int { return len(d.keys) }

func (u *unpickler) setAdd(s *pySet, v any) error {
	hk, err := u.pyHashKey(v)
	if err != nil {
		return err
	}
	if _, ok := s.index[hk]; ok {
		return nil
	}
	c := int64(costSetEntry) + keyCost(hk)
	if s.index == nil {
		c += costMapFirst
	}
	if err := u.charge(c); err != nil {
		return err
	}
	if s.index == nil {
		s.index = map[any]struct{}{}
	}
	s.index[hk] = struct{}{}
	s.items = append(s.items, v)
	return nil
}

// --- the machine ---

// Opcodes, as Python's pickletools names them.
const (
	opMark           = '('
	opStop           = '.'
	opPop            = '0'
	opPopMark        = '1'
	opDup            = '2'
	opFloat          = 'F'
	opInt            = 'I'
	opBinInt         = 'J'
	opBinInt1        = 'K'
	opLong           = 'L'
	opBinInt2        = 'M'
	opNone           = 'N'
	opPersID         = 'P'
	opBinPersID      = 'Q'
	opReduce         = 'R'
	opString         = 'S'
	opBinString      = 'T'
	opShortBinString = 'U'
	opUnicode        = 'V'
	opBinUnicode     = 'X'
	opAppend         = 'a'
	opBuild          = 'b'
	opGlobal         = 'c'
	opDict           = 'd'
	opEmptyDict      = '}'
	opAppends        = 'e'
	opGet            = 'g'
	opBinGet         = 'h'
	opInst           = 'i'
	opLongBinGet     = 'j'
	opList           = 'l'
	opEmptyList      = ']'
	opObj            = 'o'
	opPut            = 'p'
	opBinPut         = 'q'
	opLongBinPut     = 'r'
	opSetItem        = 's'
	opTuple          = 't'
	opEmptyTuple     = ')'
	opSetItems       = 'u'
	opBinFloat       = 'G'
	// protocol 2
	opProto    = 0x80
	opNewObj   = 0x81
	opExt1     = 0x82
	opExt2     = 0x83
	opExt4     = 0x84
	opTuple1   = 0x85
	opTuple2   = 0x86
	opTuple3   = 0x87
	opNewTrue  = 0x88
	opNewFalse = 0x89
	opLong1    = 0x8a
	opLong4    = 0x8b
	// protocol 3
	opBinBytes      = 'B'
	opShortBinBytes = 'C'
	// protocol 4
	opShortBinUnicode = 0x8c
	opBinUnicode8     = 0x8d
	opBinBytes8       = 0x8e
	opEmptySet        = 0x8f
	opAddItems        = 0x90
	opFrozenSet       = 0x91
	opNewObjEx        = 0x92
	opStackGlobal     = 0x93
	opMemoize         = 0x94
	opFrame           = 0x95
	// protocol 5
	opByteArray8     = 0x96
	opNextBuffer     = 0x97
	opReadonlyBuffer = 0x98
)

var opNames = map[byte]string{
	opMark: "MARK", opStop: "STOP", opPop: "POP", opPopMark: "POP_MARK", opDup: "DUP",
	opFloat: "FLOAT", opInt: "INT", opBinInt: "BININT", opBinInt1: "BININT1", opLong: "LONG",
	opBinInt2: "BININT2", opNone: "NONE", opPersID: "PERSID", opBinPersID: "BINPERSID",
	opReduce: "REDUCE", opString: "STRING", opBinString: "BINSTRING",
	opShortBinString: "SHORT_BINSTRING", opUnicode: "UNICODE", opBinUnicode: "BINUNICODE",
	opAppend: "APPEND", opBuild: "BUILD", opGlobal: "GLOBAL", opDict: "DICT",
	opEmptyDict: "EMPTY_DICT", opAppends: "APPENDS", opGet: "GET", opBinGet: "BINGET",
	opInst: "INST", opLongBinGet: "LONG_BINGET", opList: "LIST", opEmptyList: "EMPTY_LIST",
	opObj: "OBJ", opPut: "PUT", opBinPut: "BINPUT", opLongBinPut: "LONG_BINPUT",
	opSetItem: "SETITEM", opTuple: "TUPLE", opEmptyTuple: "EMPTY_TUPLE", opSetItems: "SETITEMS",
	opBinFloat: "BINFLOAT", opProto: "PROTO", opNewObj: "NEWOBJ", opExt1: "EXT1", opExt2: "EXT2",
	opExt4: "EXT4", opTuple1: "TUPLE1", opTuple2: "TUPLE2", opTuple3: "TUPLE3",
	opNewTrue: "NEWTRUE", opNewFalse: "NEWFALSE", opLong1: "LONG1", opLong4: "LONG4",
	opBinBytes: "BINBYTES", opShortBinBytes: "SHORT_BINBYTES",
	opShortBinUnicode: "SHORT_BINUNICODE", opBinUnicode8: "BINUNICODE8", opBinBytes8: "BINBYTES8",
	opEmptySet: "EMPTY_SET", opAddItems: "ADDITEMS", opFrozenSet: "FROZENSET",
	opNewObjEx: "NEWOBJ_EX", opStackGlobal: "STACK_GLOBAL", opMemoize: "MEMOIZE", opFrame: "FRAME",
	opByteArray8: "BYTEARRAY8", opNextBuffer: "NEXT_BUFFER", opReadonlyBuffer: "READONLY_BUFFER",
}

func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("0x%02x", op)
}

func (u *unpickler) run() (any, error) {
	for n := 0; u.pos < len(u.data); n++ {
		if n%ctxEvery == 0 {
			if err := ctxErr(u.ctx, u.fileName()); err != nil {
				return nil, err
			}
		}
		u.opPos = u.pos
		u.op = u.data[u.pos]
		u.pos++
		if err := u.spend(1); err != nil {
			return nil, err
		}
		if u.op == opStop {
			return u.pop()
		}
		if err := u.step(); err != nil {
			return nil, err
		}
	}
	u.opPos, u.op = u.pos, opStop
	return nil, u.errf("pickle ends without STOP (truncated?)")
}

// fileName names the load in a cancellation error.
func (u *unpickler) fileName() string {
	if u.file == "" {
		return "pickle"
	}
	return u.file
}

func (u *unpickler) step() error {
	switch u.op {
	case opProto:
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		if v > 5 {
			return u.errf("pickle protocol %d is newer than the 5 this reader knows", v)
		}
		return nil
	case opFrame:
		// Framing is a read-ahead hint; the content is ordinary opcodes.
		n, err := u.readUint(8)
		if err != nil {
			return err
		}
		if n > uint64(len(u.data)-u.pos) {
			return u.errf("frame of %d bytes runs past the end of the pickle", n)
		}
		return nil
	case opMark:
		if len(u.marks) >= u.lim.maxMarks {
			return u.errf("more than %d nested MARKs", u.lim.maxMarks)
		}
		u.marks = append(u.marks, len(u.stack))
		return u.charge(costMark)
	case opPop:
		if len(u.stack) > u.base() {
			_, err := u.pop()
			return err
		}
		// Python pops the mark itself when the frame above it is empty.
		_, err := u.popMark()
		return err
	case opPopMark:
		_, err := u.popMark()
		return err
	case opDup:
		v, err := u.top()
		if err != nil {
			return err
		}
		return u.pushRef(v, costSlot)

	case opNone:
		return u.push(nil)
	case opNewTrue:
		return u.push(true)
	case opNewFalse:
		return u.push(false)
	case opInt:
		line, err := u.readLine()
		if err != nil {
			return err
		}
		switch string(line) {
		case "00":
			return u.push(false)
		case "01":
			return u.push(true)
		}
		v, err := u.parseDecimal(line)
		if err != nil {
			return err
		}
		return u.push(v)
	case opLong:
		line, err := u.readLine()
		if err != nil {
			return err
		}
		if n := len(line); n > 0 && line[n-1] == 'L' {
			line = line[:n-1]
		}
		v, err := u.parseDecimal(line)
		if err != nil {
			return err
		}
		return u.push(v)
	case opBinInt:
		v, err := u.readUint(4)
		if err != nil {
			return err
		}
		return u.push(int64(int32(uint32(v))))
	case opBinInt1:
		v, err := u.readUint(1)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case opBinInt2:
		v, err := u.readUint(2)
		if err != nil {
			return err
		}
		return u.push(int64(v))
	case opLong1, opLong4:
		var n uint64
		var err error
		if u.op == opLong1 {
			n, err = u.readUint(1)
		} else {
			n, err = u.readUint(4)
			if err == nil && int32(uint32(n)) < 0 {
				return u.errf("negative LONG4 length")
			}
		}
		if err != nil {
			return err
		}
		b, err := u.readN(n)
		if err != nil {
			return err
		}
		if err := u.charge(int64(n) + costBigInt); err != nil {
			return err
		}
		return u.push(decodeLong(b))
	case opFloat:
		line, err := u.readLine()
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(string(line)), 64)
		if err != nil {
			// ParseFloat reports out-of-range values with ±Inf, as Python does.
			if ne, ok := err.(*strconv.NumError); !ok || ne.Err != strconv.ErrRange {
				return u.errf("bad float %s", quoteForMsg(line))
			}
		}
		return u.push(f)
	case opBinFloat:
		b, err := u.readN(8)
		if err != nil {
			return err
		}
		return u.push(math.Float64frombits(binary.BigEndian.Uint64(b)))

	case opString:
		line, err := u.readLine()
		if err != nil {
			return err
		}
		s, err := u.unquotePyString(line)
		if err != nil {
			return err
		}
		return u.pushString(s)
	case opBinString, opShortBinString, opBinUnicode, opShortBinUnicode, opBinUnicode8:
		// Python 2 str (BINSTRING) loads as str too: torch.load decodes it
		// with utf-8, numpy's latin1 byte strings arrive through _codecs.
		var n uint64
		var err error
		switch u.op {
		case opBinString:
			n, err = u.readUint(4)
			if err == nil && int32(uint32(n)) < 0 {
				return u.errf("negative BINSTRING length")
			}
		case opShortBinString, opShortBinUnicode:
			n, err = u.readUint(1)
		case opBinUnicode:
			n, err = u.readUint(4)
		default:
			n, err = u.readUint(8)
		}
		if err != nil {
			return err
		}
		b, err := u.readN(n)
		if err != nil {
			return err
		}
		return u.pushString(string(b))
	case opUnicode:
		line, err := u.readLine()
		if err != nil {
			return err
		}
		return u.pushString(decodeRawUnicodeEscape(line))
	case opBinBytes, opShortBinBytes, opBinBytes8, opByteArray8:
		var n uint64
		var err error
		switch u.op {
		case opBinBytes:
			n, err = u.readUint(4)
		case opShortBinBytes:
			n, err = u.readUint(1)
		default:
			n, err = u.readUint(8)
		}
		if err != nil {
			return err
		}
		b, err := u.readN(n)
		if err != nil {
			return err
		}
		if err := u.charge(int64(n)); err != nil {
			return err
		}
		// A copy, so values never alias the caller's buffer.
		return u.push(append([]byte(nil), b...))

	case opEmptyTuple:
		return u.push(pyTuple{})
	case opTuple:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(pyTuple(items))
	case opTuple1, opTuple2, opTuple3:
		n := int(u.op-opTuple1) + 1
		if len(u.stack)-u.base() < n {
			return u.errf("stack underflow")
		}
		t := make(pyTuple, n)
		copy(t, u.stack[len(u.stack)-n:])
		clear(u.stack[len(u.stack)-n:])
		u.stack = u.stack[:len(u.stack)-n]
		return u.push(t)
	case opEmptyList:
		return u.push(&pyList{})
	case opList:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		return u.push(&pyList{items: items})
	case opEmptyDict:
		return u.push(newPyDict())
	case opDict:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items)%2 != 0 {
			return u.errf("DICT with an odd number (%d) of keys and values", len(items))
		}
		d := newPyDict()
		for i := 0; i < len(items); i += 2 {
			if err := u.dictSet(d, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return u.push(d)
	case opEmptySet:
		return u.push(&pySet{})
	case opFrozenSet:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		s := &pySet{frozen: true}
		for _, it := range items {
			if err := u.setAdd(s, it); err != nil {
				return err
			}
		}
		return u.push(s)

	case opAppend:
		v, err := u.pop()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pyList)
		if !ok {
			return u.errf("APPEND to a %s, not a list", pyTypeName(t))
		}
		if err := u.charge(costItemCopy); err != nil {
			return err
		}
		l.items = append(l.items, v)
		return nil
	case opAppends:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		l, ok := t.(*pyList)
		if !ok {
			return u.errf("APPENDS to a %s, not a list", pyTypeName(t))
		}
		if err := u.charge(costItemCopy * int64(len(items))); err != nil {
			return err
		}
		l.items = append(l.items, items...)
		return nil
	case opSetItem:
		v, err := u.pop()
		if err != nil {
			return err
		}
		k, err := u.pop()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pyDict)
		if !ok {
			return u.errf("SETITEM on a %s, not a dict", pyTypeName(t))
		}
		return u.dictSet(d, k, v)
	case opSetItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		d, ok := t.(*pyDict)
		if !ok {
			return u.errf("SETITEMS on a %s, not a dict", pyTypeName(t))
		}
		if len(items)%2 != 0 {
			return u.errf("SETITEMS with an odd number (%d) of keys and values", len(items))
		}
		for i := 0; i < len(items); i += 2 {
			if err := u.dictSet(d, items[i], items[i+1]); err != nil {
				return err
			}
		}
		return nil
	case opAddItems:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		t, err := u.top()
		if err != nil {
			return err
		}
		s, ok := t.(*pySet)
		if !ok || s.frozen {
			return u.errf("ADDITEMS on a %s, not a set", pyTypeName(t))
		}
		for _, it := range items {
			if err := u.setAdd(s, it); err != nil {
				return err
			}
		}
		return nil

	case opGet, opBinGet, opLongBinGet:
		idx, err := u.memoIndex()
		if err != nil {
			return err
		}
		v, ok := u.memo[idx]
		if !ok {
			return u.errf("memo key %d was never stored", idx)
		}
		return u.pushRef(v, costSlot)
	case opPut, opBinPut, opLongBinPut:
		idx, err := u.memoIndex()
		if err != nil {
			return err
		}
		return u.memoPut(idx)
	case opMemoize:
		return u.memoPut(uint64(len(u.memo)))

	case opGlobal, opInst:
		mod, err := u.readLine()
		if err != nil {
			return err
		}
		name, err := u.readLine()
		if err != nil {
			return err
		}
		g, err := u.findGlobal(string(mod), string(name))
		if err != nil {
			return err
		}
		if u.op == opGlobal {
			return u.push(g)
		}
		args, err := u.popMark()
		if err != nil {
			return err
		}
		return u.callPush(g, pyTuple(args))
	case opStackGlobal:
		name, err := u.pop()
		if err != nil {
			return err
		}
		mod, err := u.pop()
		if err != nil {
			return err
		}
		ms, ok1 := mod.(string)
		ns, ok2 := name.(string)
		if !ok1 || !ok2 {
			return u.errf("STACK_GLOBAL needs two strings, got %s and %s", pyTypeName(mod), pyTypeName(name))
		}
		g, err := u.findGlobal(ms, ns)
		if err != nil {
			return err
		}
		return u.push(g)
	case opObj:
		items, err := u.popMark()
		if err != nil {
			return err
		}
		if len(items) == 0 {
			return u.errf("OBJ without a class")
		}
		return u.callPush(items[0], pyTuple(items[1:]))
	case opReduce, opNewObj:
		a, err := u.pop()
		if err != nil {
			return err
		}
		f, err := u.pop()
		if err != nil {
			return err
		}
		args, ok := a.(pyTuple)
		if !ok {
			return u.errf("arguments are a %s, not a tuple", pyTypeName(a))
		}
		return u.callPush(f, args)
	case opNewObjEx:
		kw, err := u.pop()
		if err != nil {
			return err
		}
		a, err := u.pop()
		if err != nil {
			return err
		}
		f, err := u.pop()
		if err != nil {
			return err
		}
		args, ok := a.(pyTuple)
		if !ok {
			return u.errf("arguments are a %s, not a tuple", pyTypeName(a))
		}
		if d, ok := kw.(*pyDict); !ok || d.len() != 0 {
			return u.errf("keyword arguments to a constructor are not supported")
		}
		return u.callPush(f, args)
	case opBuild:
		state, err := u.pop()
		if err != nil {
			return err
		}
		obj, err := u.top()
		if err != nil {
			return err
		}
		b, ok := obj.(pyBuilder)
		if !ok {
			return u.errf("cannot set the state of a %s", pyTypeName(obj))
		}
		return b.pyBuild(u, state)

	case opPersID, opBinPersID:
		var pid any
		if u.op == opPersID {
			line, err := u.readLine()
			if err != nil {
				return err
			}
			pid = string(line)
		} else {
			var err error
			if pid, err = u.pop(); err != nil {
				return err
			}
		}
		if u.persistentLoad == nil {
			return u.errf("persistent ids are not allowed here")
		}
		v, err := u.persistentLoad(u, pid)
		if err != nil {
			return err
		}
		return u.push(v)

	case opExt1, opExt2, opExt4:
		return u.errf("the copyreg extension registry is not supported")
	case opNextBuffer:
		return u.errf("out-of-band buffers are not supported")
	case opReadonlyBuffer:
		_, err := u.top()
		return err
	}
	return u.errf("unknown opcode (corrupt pickle?)")
}

func (u *unpickler) memoIndex() (uint64, error) {
	switch u.op {
	case opBinGet, opBinPut:
		return u.readUint(1)
	case opLongBinGet, opLongBinPut:
		return u.readUint(4)
	}
	line, err := u.readLine()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(string(line), 10, 63)
	if err != nil {
		return 0, u.errf("bad memo index %s", quoteForMsg(line))
	}
	return v, nil
}

func (u *unpickler) memoPut(idx uint64) error {
	v, err := u.top()
	if err != nil {
		return err
	}
	if _, ok := u.memo[idx]; !ok {
		if err := u.charge(costMemo); err != nil {
			return err
		}
	}
	u.memo[idx] = v
	return nil
}

func (u *unpickler) pushString(s string) error {
	if err := u.charge(int64(len(s))); err != nil {
		return err
	}
	return u.push(s)
}

// findGlobal is the only way a name in the pickle becomes something callable.
func (u *unpickler) findGlobal(mod, name string) (*pyGlobal, error) {
	if err := u.spend(int64(len(mod)+len(name)) / 16); err != nil {
		return nil, err
	}
	g, ok := u.globals[mod+"."+name]
	if !ok || g == nil {
		return nil, &pickleGlobalError{module: truncForMsg([]byte(mod)), name: truncForMsg([]byte(name))}
	}
	return g, nil
}

func (u *unpickler) callPush(f any, args pyTuple) error {
	g, ok := f.(*pyGlobal)
	if !ok {
		return u.errf("cannot call a %s", pyTypeName(f))
	}
	if g.call == nil {
		return u.errf("%s is not callable here", g)
	}
	if err := u.spend(int64(len(args)) + 1); err != nil {
		return err
	}
	v, err := g.call(u, args)
	if err != nil {
		if _, ok := err.(*pickleError); ok {
			return err
		}
		if _, ok := err.(*pickleGlobalError); ok {
			return err
		}
		var le *LimitError
		if errors.As(err, &le) {
			return le // a budget passed inside the call: report the budget
		}
		return u.errf("%s: %v", g, err)
	}
	return u.push(v)
}

// parseDecimal parses a protocol 0 integer, falling back to *big.Int beyond
// int64. Inputs are bounded by the pickle length, so big.Int parsing is too.
func (u *unpickler) parseDecimal(line []byte) (any, error) {
	s := strings.TrimSpace(string(line))
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	// Decimal to binary takes time quadratic in the digits (100,000
	// digits took 16 ms, so a 64 MiB pickle of them 10 s). Python itself
	// refuses int() of more than 4300 digits (sys.int_info
	// .default_max_str_digits); the work is charged too.
	if len(s) > maxDecimalDigits {
		return nil, u.errf("integer of %d digits is longer than the %d Python reads", len(s), maxDecimalDigits)
	}
	if err := u.spend(int64(len(s)) * int64(len(s)) / 1024); err != nil {
		return nil, err
	}
	b, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return nil, u.errf("bad integer %s", quoteForMsg(line))
	}
	if err := u.charge(int64(len(s)) + costBigInt); err != nil {
		return nil, err
	}
	return normInt(b), nil
}

// maxDecimalDigits is the longest protocol 0 integer read (Python's own
// limit for converting a decimal string to an int).
const maxDecimalDigits = 4300

// decodeLong decodes LONG1/LONG4's little-endian two's complement integer.
func decodeLong(b []byte) any {
	n := len(b)
	if n == 0 {
		return int64(0)
	}
	if n <= 8 {
		var v uint64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | uint64(b[i])
		}
		// Sign-extend from n bytes.
		shift := uint(64 - 8*n)
		return int64(v<<shift) >> shift
	}
	be := make([]byte, n)
	for i := range b {
		be[n-1-i] = b[i]
	}
	v := new(big.Int).SetBytes(be)
	if b[n-1]&0x80 != 0 {
		v.Sub(v, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
	}
	return normInt(v)
}

// normInt returns an int64 when b fits, else b.
func normInt(b *big.Int) any {
	if b.IsInt64() {
		return b.Int64()
	}
	return b
}

// unquotePyString decodes protocol 0 STRING's argument: a Python 2 str
// literal in quotes with backslash escapes.
func (u *unpickler) unquotePyString(line []byte) (string, error) {
	if len(line) < 2 || (line[0] != '\'' && line[0] != '"') || line[len(line)-1] != line[0] {
		return "", u.errf("STRING argument is not a quoted string")
	}
	s := line[1 : len(line)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return "", u.errf("STRING ends in a backslash")
		}
		switch c = s[i]; c {
		case '\\', '\'', '"':
			out = append(out, c)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'v':
			out = append(out, 11)
		case '\n':
		case 'x':
			if i+2 >= len(s) {
				return "", u.errf("STRING has a truncated \\x escape")
			}
			v, err := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
			if err != nil {
				return "", u.errf("STRING has a bad \\x escape")
			}
			out = append(out, byte(v))
			i += 2
		default:
			if c >= '0' && c <= '7' {
				v := 0
				j := i
				for ; j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7'; j++ {
					v = v*8 + int(s[j]-'0')
				}
				out = append(out, byte(v))
				i = j - 1
				continue
			}
			// Python keeps unknown escapes verbatim.
			out = append(out, '\\', c)
		}
	}
	return string(out), nil
}

// decodeRawUnicodeEscape decodes protocol 0 UNICODE's raw-unicode-escape
// argument: bytes are Latin-1 code points, except \uXXXX and \UXXXXXXXX.
func decodeRawUnicodeEscape(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\\' && i+1 < len(b) && (b[i+1] == 'u' || b[i+1] == 'U') {
			n := 4
			if b[i+1] == 'U' {
				n = 8
			}
			if i+2+n <= len(b) {
				if v, err := strconv.ParseUint(string(b[i+2:i+2+n]), 16, 32); err == nil {
					r := rune(v)
					if !utf8.ValidRune(r) {
						// Lone surrogates (Python allows them): keep them
						// visible rather than failing the whole load.
						r = utf8.RuneError
					}
					sb.WriteRune(r)
					i += 1 + n
					continue
				}
			}
		}
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// pyTypeName names a value's Python type for error messages.
func pyTypeName(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "bool"
	case int64, *big.Int:
		return "int"
	case float64:
		return "float"
	case string:
		return "str"
	case []byte:
		return "bytes"
	case pyTuple:
		return "tuple"
	case *pyList:
		return "list"
	case *pyDict:
		return "dict"
	case *pySet:
		if x.frozen {
			return "frozenset"
		}
		return "set"
	case *pyGlobal:
		return x.String()
	case interface{ pyTypeName() string }:
		return x.pyTypeName()
	}
	return fmt.Sprintf("%T", v)
}

// truncForMsg keeps hostile strings from flooding error messages.
// quoteForMsg is b quoted (and cut to 80 bytes) for a message: for a %s
// verb, where truncForMsg's result would be quoted twice by %q.
func quoteForMsg(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

func truncForMsg(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	s := string(b)
	if strconv.CanBackquote(s) || !strings.ContainsAny(s, "\x00\n\r") {
		return s
	}
	return strconv.Quote(s)
}

// --- allow-listed globals that are plain data ---

// pickleBaseGlobals are the non-torch globals a checkpoint may reference:
// containers, Python 3's protocol-2 encoding of bytes, and numpy scalars and
// arrays (training scripts save accuracies and losses as numpy values).
// Everything here builds inert data.
func pickleBaseGlobals() map[string]*pyGlobal {
	m := map[string]*pyGlobal{}
	add := func(full string, call func(u *unpickler, args pyTuple) (any, error)) {
		i := strings.LastIndexByte(full, '.')
		m[full] = &pyGlobal{module: full[:i], name: full[i+1:], call: call}
	}
	add("collections.OrderedDict", callOrderedDict)
	add("builtins.dict", callOrderedDict)
	add("__builtin__.dict", callOrderedDict)
	add("_codecs.encode", callCodecsEncode)
	for _, mod := range []string{"builtins", "__builtin__"} {
		add(mod+".set", func(u *unpickler, args pyTuple) (any, error) { return callSet(u, args, false) })
		add(mod+".frozenset", func(u *unpickler, args pyTuple) (any, error) { return callSet(u, args, true) })
		add(mod+".bytes", callBytes)
		add(mod+".bytearray", callBytes)
		add(mod+".list", callList)
		add(mod+".tuple", callTuple)
	}
	add("numpy.dtype", callNumpyDType)
	add("numpy.core.multiarray.scalar", callNumpyScalar)
	add("numpy._core.multiarray.scalar", callNumpyScalar)
	add("numpy.core.multiarray._reconstruct", callNumpyReconstruct)
	add("numpy._core.multiarray._reconstruct", callNumpyReconstruct)
	add("numpy.ndarray", nil)
	return m
}

// iterItems returns the items of a list, tuple or set argument.
func iterItems(v any) ([]any, bool) {
	switch x := v.(type) {
	case pyTuple:
		return x, true
	case *pyList:
		return x.items, true
	case *pySet:
		return x.items, true
	}
	return nil, false
}

func callOrderedDict(u *unpickler, args pyTuple) (any, error) {
	d := newPyDict()
	if len(args) == 0 {
		return d, nil
	}
	if len(args) != 1 {
		return nil, fmt.Errorf("takes at most 1 argument, got %d", len(args))
	}
	if src, ok := args[0].(*pyDict); ok {
		for i := range src.keys {
			if err := u.dictSet(d, src.keys[i], src.vals[i]); err != nil {
				return nil, err
			}
		}
		return d, nil
	}
	items, ok := iterItems(args[0])
	if !ok {
		return nil, fmt.Errorf("argument is a %s, not a sequence of pairs", pyTypeName(args[0]))
	}
	for _, it := range items {
		kv, ok := iterItems(it)
		if !ok || len(kv) != 2 {
			return nil, fmt.Errorf("item is not a key-value pair")
		}
		if err := u.dictSet(d, kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func callSet(u *unpickler, args pyTuple, frozen bool) (any, error) {
	s := &pySet{frozen: frozen}
	if len(args) == 0 {
		return s, nil
	}
	items, ok := iterItems(args[0])
	if len(args) != 1 || !ok {
		return nil, fmt.Errorf("needs one list argument")
	}
	for _, it := range items {
		if err := u.setAdd(s, it); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func callList(u *unpickler, args pyTuple) (any, error) {
	if len(args) == 0 {
		return &pyList{}, nil
	}
	items, ok := iterItems(args[0])
	if len(args) != 1 || !ok {
		return nil, fmt.Errorf("needs one sequence argument")
	}
	if err := u.charge(16 * int64(len(items))); err != nil {
		return nil, err
	}
	return &pyList{items: append([]any(nil), items...)}, nil
}

func callTuple(u *unpickler, args pyTuple) (any, error) {
	if len(args) == 0 {
		return pyTuple{}, nil
	}
	items, ok := iterItems(args[0])
	if len(args) != 1 || !ok {
		return nil, fmt.Errorf("needs one sequence argument")
	}
	if err := u.charge(16 * int64(len(items))); err != nil {
		return nil, err
	}
	return append(pyTuple(nil), items...), nil
}

// callBytes handles bytes()/bytearray() as protocols 0-2 write them: no
// argument, a bytes argument, or a (str, encoding) pair.
func callBytes(u *unpickler, args pyTuple) (any, error) {
	switch len(args) {
	case 0:
		return []byte{}, nil
	case 1:
		if b, ok := args[0].([]byte); ok {
			return b, nil
		}
	case 2:
		return callCodecsEncode(u, args)
	}
	return nil, fmt.Errorf("unsupported arguments")
}

// callCodecsEncode implements _codecs.encode(str, encoding): Python 3 writes
// bytes that way under protocol 2 (the str holds one code point per byte).
func callCodecsEncode(u *unpickler, args pyTuple) (any, error) {
	if len(args) < 1 || len(args) > 2 {
		return nil, fmt.Errorf("takes 1 or 2 arguments, got %d", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("argument is a %s, not a str", pyTypeName(args[0]))
	}
	enc := "utf-8"
	if len(args) == 2 {
		if enc, ok = args[1].(string); !ok {
			return nil, fmt.Errorf("encoding is a %s, not a str", pyTypeName(args[1]))
		}
	}
	if err := u.charge(int64(len(s))); err != nil {
		return nil, err
	}
	if err := u.spend(int64(len(s))); err != nil {
		return nil, err
	}
	switch strings.ReplaceAll(strings.ToLower(enc), "_", "-") {
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1":
		out := make([]byte, 0, len(s))
		for _, r := range s {
			if r > 0xff {
				return nil, fmt.Errorf("character U+%04X is not Latin-1", r)
			}
			out = append(out, byte(r))
		}
		return out, nil
	case "ascii", "us-ascii":
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				return nil, fmt.Errorf("non-ASCII byte in ASCII string")
			}
		}
		return []byte(s), nil
	case "utf-8", "utf8":
		return []byte(s), nil
	}
	return nil, fmt.Errorf("encoding %s is not supported", quoteForMsg([]byte(enc)))
}

// npDType is a numpy dtype as numpy pickles it: numpy.dtype('f8', False,
// True) followed by BUILD with a state tuple whose second item is the byte
// order.
type npDType struct {
	kind  byte // 'f', 'i', 'u', 'b', or another numpy kind we keep but do not decode
	size  int
	spec  string
	order byte // '<', '>', '|' or '='
}

func (*npDType) pyTypeName() string { return "numpy.dtype" }

func (d *npDType) String() string { return d.spec }

func callNumpyDType(u *unpickler, args pyTuple) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("needs a type string")
	}
	spec, ok := args[0].(string)
	if !ok || len(spec) == 0 || len(spec) > 32 {
		return nil, fmt.Errorf("type is a %s, not a short str", pyTypeName(args[0]))
	}
	d := &npDType{spec: spec, order: '='}
	s := spec
	switch s[0] {
	case '<', '>', '|', '=':
		d.order = s[0]
		s = s[1:]
	}
	if s == "?" {
		s = "b1"
	}
	if len(s) >= 2 {
		if n, err := strconv.Atoi(s[1:]); err == nil && n > 0 && n <= 64 {
			d.kind, d.size = s[0], n
		}
	}
	return d, nil
}

func (d *npDType) pyBuild(u *unpickler, state any) error {
	st, ok := state.(pyTuple)
	if !ok || len(st) < 2 {
		return u.errf("numpy dtype state is a %s, not a tuple", pyTypeName(state))
	}
	if o, ok := st[1].(string); ok && len(o) == 1 && strings.ContainsAny(o, "<>|=") {
		d.order = o[0]
	}
	return nil
}

// byteOrder returns the binary.ByteOrder of the dtype's values (numpy's '='
// is the writer's native order, little-endian on every machine torch runs on).
func (d *npDType) byteOrder() binary.ByteOrder {
	if d.order == '>' {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// npOpaque is a numpy value of a dtype we do not decode (complex, datetime,
// strings): kept as an inert placeholder so an odd metadata value does not
// make the whole checkpoint unreadable.
type npOpaque struct{ dtype string }

func (o *npOpaque) pyTypeName() string { return "numpy scalar of dtype " + o.dtype }

// callNumpyScalar implements numpy.core.multiarray.scalar(dtype, bytes),
// returning a plain float64, int64 (or *big.Int), or bool.
func callNumpyScalar(u *unpickler, args pyTuple) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("takes 2 arguments, got %d", len(args))
	}
	d, ok := args[0].(*npDType)
	if !ok {
		return nil, fmt.Errorf("first argument is a %s, not a numpy.dtype", pyTypeName(args[0]))
	}
	var raw []byte
	switch b := args[1].(type) {
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		return nil, fmt.Errorf("data is a %s, not bytes", pyTypeName(args[1]))
	}
	v, ok, err := decodeNumpyValue(d, raw)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &npOpaque{dtype: d.spec}, nil
	}
	return v, nil
}

// decodeNumpyValue decodes one element; ok is false for kinds not decoded.
func decodeNumpyValue(d *npDType, raw []byte) (any, bool, error) {
	if d.size == 0 || !strings.ContainsRune("fiub", rune(d.kind)) {
		return nil, false, nil
	}
	if len(raw) != d.size {
		return nil, false, fmt.Errorf("numpy %s scalar has %d bytes, expected %d", d.spec, len(raw), d.size)
	}
	bo := d.byteOrder()
	switch d.kind {
	case 'f':
		switch d.size {
		case 2:
			return float64(halfToFloat(bo.Uint16(raw))), true, nil
		case 4:
			return float64(math.Float32frombits(bo.Uint32(raw))), true, nil
		case 8:
			return math.Float64frombits(bo.Uint64(raw)), true, nil
		}
	case 'i', 'u':
		var v uint64
		switch d.size {
		case 1:
			v = uint64(raw[0])
		case 2:
			v = uint64(bo.Uint16(raw))
		case 4:
			v = uint64(bo.Uint32(raw))
		case 8:
			v = bo.Uint64(raw)
		default:
			return nil, false, nil
		}
		if d.kind == 'u' {
			if v > math.MaxInt64 {
				return new(big.Int).SetUint64(v), true, nil
			}
			return int64(v), true, nil
		}
		shift := uint(64 - 8*d.size)
		return int64(v<<shift) >> shift, true, nil
	case 'b':
		if d.size == 1 {
			return raw[0] != 0, true, nil
		}
	}
	return nil, false, nil
}

// halfToFloat converts IEEE binary16 bits (numpy float16) to float32. Kept
// local so the pickle reader does not import the kernels package.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: normalise.
	e := uint32(113)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// npArray is a numpy ndarray: numpy pickles one as
// _reconstruct(ndarray, (0,), b'b') then BUILD with
// (version, shape, dtype, is_fortran, rawdata).
type npArray struct {
	shape   []int
	dtype   *npDType
	fortran bool
	data    []byte
}

func (*npArray) pyTypeName() string { return "numpy.ndarray" }

func callNumpyReconstruct(u *unpickler, args pyTuple) (any, error) {
	if len(args) < 1 {
		return nil, fmt.Errorf("needs a class")
	}
	if g, ok := args[0].(*pyGlobal); !ok || g.String() != "numpy.ndarray" {
		return nil, fmt.Errorf("reconstructs a %s, not a numpy.ndarray", pyTypeName(args[0]))
	}
	return &npArray{}, nil
}

func (a *npArray) pyBuild(u *unpickler, state any) error {
	st, ok := state.(pyTuple)
	if !ok || len(st) != 5 {
		return u.errf("numpy array state is not a 5-tuple")
	}
	dims, ok := iterItems(st[1])
	if !ok || len(dims) > 64 {
		return u.errf("numpy array shape is not a tuple of at most 64 ints")
	}
	d, ok := st[2].(*npDType)
	if !ok {
		return u.errf("numpy array dtype is a %s", pyTypeName(st[2]))
	}
	var raw []byte
	switch b := st[4].(type) {
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		return u.errf("numpy array of %s objects is not supported (only raw numeric data)", d.spec)
	}
	n := int64(1)
	shape := make([]int, len(dims))
	for i, x := range dims {
		v, ok := x.(int64)
		if !ok || v < 0 || v > int64(len(raw))+1 {
			return u.errf("numpy array dimension %d is not a valid size", i)
		}
		shape[i] = int(v)
		if v != 0 && n > (int64(len(raw))+1)/v {
			n = int64(len(raw)) + 1 // larger than the data: rejected below
		} else {
			n *= v
		}
	}
	if d.size == 0 || n*int64(d.size) != int64(len(raw)) {
		return u.errf("numpy array of shape %v and dtype %s does not match its %d data bytes", shape, d.spec, len(raw))
	}
	fortran, _ := st[3].(bool)
	a.shape, a.dtype, a.fortran, a.data = shape, d, fortran, raw
	return nil
}

// pyBuild on dicts keeps the state (OrderedDict's __dict__, e.g. torch's
// _metadata) without interpreting it.
func (d *pyDict) pyBuild(u *unpickler, state any) error {
	d.state = state
	return nil
}
