package modelio

import (
	"archive/zip"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// pickleCanon renders a decoded value exactly as gen.py's canon() renders the
// Python value, so the two can be compared as strings.
func pickleCanon(t testing.TB, v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case *big.Int:
		return x.String()
	case float64:
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], math.Float64bits(x))
		return "f" + hex.EncodeToString(b[:])
	case string:
		return "u" + hex.EncodeToString([]byte(x))
	case []byte:
		return "b" + hex.EncodeToString(x)
	case pyTuple:
		return "(" + pickleCanonJoin(t, x) + ")"
	case *pyList:
		return "[" + pickleCanonJoin(t, x.items) + "]"
	case *pyDict:
		parts := make([]string, len(x.keys))
		for i := range x.keys {
			parts[i] = pickleCanon(t, x.keys[i]) + ":" + pickleCanon(t, x.vals[i])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case *pySet:
		parts := make([]string, len(x.items))
		for i, it := range x.items {
			parts[i] = pickleCanon(t, it)
		}
		slices.Sort(parts)
		if x.frozen {
			return "frozenset{" + strings.Join(parts, ",") + "}"
		}
		return "set{" + strings.Join(parts, ",") + "}"
	}
	t.Fatalf("unexpected value of type %T", v)
	return ""
}

func pickleCanonJoin(t testing.TB, items []any) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = pickleCanon(t, it)
	}
	return strings.Join(parts, ",")
}

func readTorchExpected(t testing.TB) map[string]json.RawMessage {
	b, err := os.ReadFile(filepath.Join("testdata", "torch", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Python's own pickles of the same plain value at every protocol decode to
// what Python had.
func TestUnpicklePlainProtocols(t *testing.T) {
	var want string
	if err := json.Unmarshal(readTorchExpected(t)["plain"], &want); err != nil {
		t.Fatal(err)
	}
	for proto := 0; proto <= 5; proto++ {
		t.Run(fmt.Sprint("protocol", proto), func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "torch", fmt.Sprintf("plain_p%d.pkl", proto)))
			if err != nil {
				t.Fatal(err)
			}
			v, err := unpickle(data, pickleBaseGlobals())
			if err != nil {
				t.Fatal(err)
			}
			if got := pickleCanon(t, v); got != want {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Fatalf("decoded value differs from Python's at char %d:\n got  ...%s\n want ...%s", i, got[max(0, i-40):min(len(got), i+80)], want[max(0, i-40):min(len(want), i+80)])
			}
		})
	}
}

// The memo shares one list between places, as Python does: a later APPEND
// through one reference shows through the other.
func TestUnpickleSharedList(t *testing.T) {
	// [L, L] where L = [] then L.append(1) via the memo: protocol 2.
	data := []byte("\x80\x02]q\x00]q\x01ah\x00h\x01ah\x01K\x01a0.")
	v, err := unpickle(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := v.(*pyList)
	if len(l.items) != 2 || l.items[0] != l.items[1] || len(l.items[0].(*pyList).items) != 1 {
		t.Fatalf("got %#v", l)
	}
}

func TestUnpickleScalars(t *testing.T) {
	cases := []struct {
		in   string
		want string
	}{
		{"I42\n.", "42"},
		{"I-7\n.", "-7"},
		{"I01\n.", "True"},
		{"I00\n.", "False"},
		{"I123456789012345678901234567890\n.", "123456789012345678901234567890"},
		{"L-5L\n.", "-5"},
		{"L99999999999999999999999L\n.", "99999999999999999999999"},
		{"F1.5\n.", pickleCanon(t, 1.5)},
		{"Finf\n.", pickleCanon(t, math.Inf(1))},
		{"F1e999\n.", pickleCanon(t, math.Inf(1))},
		{"S'a\\'b\\n\\x41\\101\\\\'\n.", pickleCanon(t, "a'b\nAA\\")},
		{"S\"q\"\n.", pickleCanon(t, "q")},
		{"V\\u20ac\\U0001F600x\\n\n.", pickleCanon(t, "\u20ac\U0001F600x\\n")},
		{"\x80\x02\x8a\x00.", "0"},
		{"\x80\x02\x8a\x01\xff.", "-1"},
		{"\x80\x02\x8a\x02\x00\x80.", "-32768"},
		{"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", "18446744073709551616"},
		{"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xff.", "-18446744073709551616"},
		{"\x80\x02\x8b\x01\x00\x00\x00\x05.", "5"},
		{"J\xff\xff\xff\xff.", "-1"},
		{"M\xff\xff.", "65535"},
		{"G\x3f\xf8\x00\x00\x00\x00\x00\x00.", pickleCanon(t, 1.5)},
		{"T\x02\x00\x00\x00ab.", pickleCanon(t, "ab")},
		{"U\x01z.", pickleCanon(t, "z")},
		{"C\x02\x00\xff.", "b00ff"},
		{"\x96\x01\x00\x00\x00\x00\x00\x00\x00\x07\x98.", "b07"},
		{"N.", "None"},
		{"\x88.", "True"},
		{"K\x01K\x02\x86\x85.", "((1,2))"},
		{"(K\x01K\x02d.", "{1:2}"},
		{"(K\x01K\x02l.", "[1,2]"},
		{"}\x88K\x01sK\x01K\x02s.", "{True:2}"}, // True and 1 are the same key, first key object kept
		{"\x8f(K\x01K\x01K\x02\x90.", "set{1,2}"},
		{"(K\x01\x91.", "frozenset{1}"},
		{"K\x01K\x020.", "1"},           // POP
		{"K\x01(K\x02K\x031.", "1"},     // POP_MARK
		{"K\x012\x86.", "(1,1)"},        // DUP
		{"K\x01p7\ng7\n\x86.", "(1,1)"}, // PUT/GET
		{"K\x01r\x00\x01\x00\x00j\x00\x01\x00\x00\x86.", "(1,1)"},
		{"\x80\x04\x95\x03\x00\x00\x00\x00\x00\x00\x00K\x01\x94h\x00\x86.", "(1,1)"},
		{"K\x05.trailing garbage ignored", "5"},
	}
	for _, c := range cases {
		v, err := unpickle([]byte(c.in), pickleBaseGlobals())
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := pickleCanon(t, v); got != c.want {
			t.Errorf("%q: got %s, want %s", c.in, got, c.want)
		}
	}
}

// numpy scalars as numpy writes them under protocol 2 (dtype, then BUILD
// with the byte order, then bytes through _codecs.encode) become numbers.
func TestUnpickleNumpyScalar(t *testing.T) {
	mk := func(spec, order string, raw []byte) []byte {
		var b []byte
		b = append(b, "\x80\x02cnumpy.core.multiarray\nscalar\ncnumpy\ndtype\nX"...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(spec)))
		b = append(b, spec...)
		b = append(b, "\x89\x88\x87R(K\x03X\x01\x00\x00\x00"...)
		b = append(b, order...)
		b = append(b, "NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tbC"...)
		b = append(b, byte(len(raw)))
		b = append(b, raw...)
		b = append(b, "\x86R."...)
		return b
	}
	f8 := binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.625))
	f8be := binary.BigEndian.AppendUint64(nil, math.Float64bits(0.625))
	cases := []struct {
		spec, order string
		raw         []byte
		want        any
	}{
		{"f8", "<", f8, 0.625},
		{"f8", ">", f8be, 0.625},
		{"f4", "<", binary.LittleEndian.AppendUint32(nil, math.Float32bits(-2.5)), -2.5},
		{"f2", "<", []byte{0x00, 0x3c}, 1.0},
		{"i8", "<", binary.LittleEndian.AppendUint64(nil, uint64(1<<63-1)), int64(1<<63 - 1)},
		{"i4", "<", []byte{0xfe, 0xff, 0xff, 0xff}, int64(-2)},
		{"i1", "|", []byte{0x80}, int64(-128)},
		{"u1", "|", []byte{0xff}, int64(255)},
		{"u2", "<", []byte{0xff, 0xff}, int64(65535)},
		{"b1", "|", []byte{1}, true},
	}
	for _, c := range cases {
		v, err := unpickle(mk(c.spec, c.order, c.raw), pickleBaseGlobals())
		if err != nil {
			t.Errorf("%s: %v", c.spec, err)
			continue
		}
		if v != c.want {
			t.Errorf("%s%s: got %#v, want %#v", c.order, c.spec, v, c.want)
		}
	}
	v, err := unpickle(mk("u8", "<", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), pickleBaseGlobals())
	if err != nil || v.(*big.Int).String() != "18446744073709551615" {
		t.Errorf("u8 max: %v %v", v, err)
	}
	// Complex scalars are kept as inert placeholders, not errors.
	v, err = unpickle(mk("c16", "<", make([]byte, 16)), pickleBaseGlobals())
	if _, ok := v.(*npOpaque); err != nil || !ok {
		t.Errorf("c16: %#v %v", v, err)
	}
	// Wrong byte count.
	if _, err := unpickle(mk("f8", "<", []byte{1, 2}), pickleBaseGlobals()); err == nil || !strings.Contains(err.Error(), "expected 8") {
		t.Errorf("short f8: %v", err)
	}
}

func TestUnpickleNumpyArray(t *testing.T) {
	// numpy.array([1.5, 2.5], dtype='<f4') as numpy pickles it at protocol 2,
	// with the raw data given separately so it can be made inconsistent.
	mk := func(raw []byte) []byte {
		var b []byte
		b = append(b, "\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x02\x85cnumpy\ndtype\nX\x02\x00\x00\x00f4\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89C"...)
		b = append(b, byte(len(raw)))
		b = append(b, raw...)
		return append(b, "tb."...)
	}
	raw := binary.LittleEndian.AppendUint32(nil, math.Float32bits(1.5))
	raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(2.5))
	v, err := unpickle(mk(raw), pickleBaseGlobals())
	if err != nil {
		t.Fatal(err)
	}
	a := v.(*npArray)
	if !slices.Equal(a.shape, []int{2}) || a.dtype.spec != "f4" || string(a.data) != string(raw) {
		t.Fatalf("got %+v", a)
	}
	// Data not matching the shape is refused.
	if _, err := unpickle(mk(raw[:7]), pickleBaseGlobals()); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched numpy array data: %v", err)
	}
}

// fakeTorchReader resolves persistent ids without an archive behind them
// (n fake entries bound the number of storages).
func fakeTorchReader(n int) *torchReader {
	tr := &torchReader{name: "fake", prefix: "archive/", storages: map[string]*torchStorage{}, storageBytes: map[string][]byte{}, entries: map[string]*zip.File{}}
	for i := range n {
		tr.entries[fmt.Sprint("none/", i)] = nil
	}
	return tr
}

func TestUnpickleRefusesUnknownGlobals(t *testing.T) {
	for _, in := range []string{
		"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.",          // GLOBAL
		"\x80\x04\x8c\x02os\x8c\x06system\x93.",                     // STACK_GLOBAL
		"(S'echo'\nios\nsystem\n.",                                  // INST
		"\x80\x02cbuiltins\neval\n.",                                // a global never called
		"\x80\x02ctorch._utils\n_rebuild_tensor_v2\ncos\nsystem\n.", // allowed then refused
	} {
		_, err := unpickle([]byte(in), torchGlobals)
		var ge *pickleGlobalError
		if !errors.As(err, &ge) {
			t.Errorf("%q: got %v, want a refused global", in, err)
			continue
		}
		if !strings.Contains(err.Error(), "pickle references global") || !(strings.Contains(err.Error(), "os.system") || strings.Contains(err.Error(), "builtins.eval")) {
			t.Errorf("%q: message %q does not name the global", in, err)
		}
	}
}

// Malformed input gives an error, never a panic.
func TestUnpickleMalformed(t *testing.T) {
	cases := map[string]string{
		"empty":                  "",
		"no stop":                "K\x01",
		"pop empty":              "0.",
		"stop on empty":          ".",
		"append to int":          "K\x01K\x02a.",
		"setitem odd":            "}(K\x01u.",
		"setitems on list":       "](K\x01K\x02u.",
		"tuple without mark":     "K\x01t.",
		"tuple2 short":           "K\x01\x86.",
		"pop below mark":         "K\x01(\x85.",
		"memo get missing":       "h\x07.",
		"long memo get missing":  "j\xff\xff\xff\xff.",
		"text get missing":       "g12\n.",
		"put on empty":           "q\x00.",
		"bad put index":          "K\x01p-1\n.",
		"truncated binunicode":   "X\xff\xff\xff\x7fab.",
		"huge binunicode8":       "\x8d\xff\xff\xff\xff\xff\xff\xff\xffab.",
		"huge binbytes8":         "\x8e\x00\x00\x00\x00\x00\x00\x00\x80.",
		"negative binstring":     "T\xff\xff\xff\xff.",
		"negative long4":         "\x8b\xff\xff\xff\xff.",
		"bad int":                "I12x\n.",
		"bad float":              "Fabc\n.",
		"line without newline":   "I12",
		"bad string quote":       "S'abc\n.",
		"string bad escape":      "S'\\x4'\n.",
		"unknown opcode":         "\xff.",
		"protocol 6":             "\x80\x06N.",
		"frame past end":         "\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00N.",
		"reduce non-tuple":       "\x80\x02ccollections\nOrderedDict\nK\x01R.",
		"call non-callable":      "K\x01)R.",
		"build on int":           "K\x01Nb.",
		"unhashable key":         "}]K\x01s.",
		"persid not allowed":     "Pfoo\n.",
		"binpersid not allowed":  "K\x01Q.",
		"ext1":                   "\x82\x01.",
		"next buffer":            "\x97.",
		"stack global non-str":   "K\x01K\x02\x93.",
		"newobj_ex kwargs":       "\x80\x04ccollections\nOrderedDict\n)}K\x01K\x02s\x92.",
		"ordered dict bad items": "\x80\x02ccollections\nOrderedDict\n]K\x01a\x85R.",
		"codecs non-latin1":      "\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00\xe2\x82\xacX\x06\x00\x00\x00latin1\x86R.",
		"codecs bad encoding":    "\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x03\x00\x00\x00rot\x86R.",
		"additems on frozenset":  "(\x91(K\x01\x90.",
		"pop_mark without mark":  "1.",
		"dict odd":               "(K\x01d.",
	}
	for name, in := range cases {
		_, err := unpickle([]byte(in), pickleBaseGlobals())
		if err == nil {
			t.Errorf("%s: %q accepted", name, in)
		}
	}
}

func TestUnpickleMemoMissingMessage(t *testing.T) {
	_, err := unpickle([]byte("\x80\x02h\x05."), nil)
	if err == nil || !strings.Contains(err.Error(), "memo key 5") || !strings.Contains(err.Error(), "BINGET") {
		t.Fatalf("got %v", err)
	}
}

// Deep nesting and piles of MARKs are bounded.
func TestUnpickleDeepNesting(t *testing.T) {
	// 100k MARKs: refused once past the limit.
	in := strings.Repeat("(", 100000) + "."
	_, err := unpickle([]byte(in), nil)
	if err == nil || !strings.Contains(err.Error(), "nested MARKs") {
		t.Fatalf("marks: %v", err)
	}
	// A tuple nested 1M deep builds (no recursion in the machine), and a
	// walk over it stops at its depth limit.
	in = "N" + strings.Repeat("\x85", 1000000) + "."
	v, err := unpickle([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := toPlain(v, 0, new(int)); ok {
		t.Fatal("toPlain accepted a million-deep tuple")
	}
	// Using it as a dict key is refused, not a stack overflow.
	in = "}N" + strings.Repeat("\x85", 100000) + "Ns."
	if _, err := unpickle([]byte(in), nil); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("deep key: %v", err)
	}
	// A list that contains itself.
	v, err = unpickle([]byte("]q\x00h\x00a."), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := toPlain(v, 0, new(int)); ok {
		t.Fatal("toPlain accepted a cyclic list")
	}
	// Shared references doubling at every level: 2^60 paths, few nodes.
	var b strings.Builder
	b.WriteString("N")
	for range 60 {
		b.WriteString("2\x86")
	}
	b.WriteString(".")
	v, err = unpickle([]byte(b.String()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := toPlain(v, 0, new(int)); ok {
		t.Fatal("toPlain walked 2^60 paths")
	}
	// The same structure as a dict key is bounded by the key size cap.
	if _, err := unpickle([]byte("}"+b.String()[:len(b.String())-1]+"Ns."), nil); err == nil {
		t.Fatal("2^60-path key accepted")
	}
}

// Work and allocation are bounded relative to the input.
func TestUnpickleBudgets(t *testing.T) {
	// A 100 KB string used as a dict key 30k times: hashing cost is charged.
	var b []byte
	b = append(b, "}X"...)
	b = binary.LittleEndian.AppendUint32(b, 100000)
	b = append(b, strings.Repeat("k", 100000)...)
	b = append(b, "q\x000"...)
	for range 30000 {
		b = append(b, "h\x00Ns"...)
	}
	b = append(b, '.')
	u := newUnpickler(append(slices.Clone(b[:len(b)-1-4*29000]), '.'), nil)
	u.lim.maxWork = 16 << 20
	if _, err := u.run(); err != nil {
		t.Fatal(err) // 1000 uses: within budget
	}
	u = newUnpickler(b, nil)
	u.lim.maxWork = 16 << 20
	var le *LimitError
	if _, err := u.run(); !errors.As(err, &le) || !strings.Contains(err.Error(), "steps") {
		t.Fatalf("work budget not enforced: %v", err)
	}
	// DUP a million times: 16 bytes charged per push.
	in := "N" + strings.Repeat("2", 1000000) + "."
	u = newUnpickler([]byte(in), nil)
	u.lim.maxAlloc = 1 << 20
	if _, err := u.run(); !errors.As(err, &le) || !strings.Contains(err.Error(), "values") {
		t.Fatalf("alloc budget not enforced: %v", err)
	}
}

func TestUnpickleOrderedDictKeepsOrder(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "torch", "seed_dlrm.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	tr := fakeTorchReader(100)
	u := newUnpickler(data, torchGlobals)
	u.persistentLoad = tr.persistentLoad
	v, err := u.run()
	if err != nil {
		t.Fatal(err)
	}
	top := v.(*pyDict)
	var keys []string
	for _, k := range top.keys {
		keys = append(keys, k.(string))
	}
	want := []string{"nepochs", "nbatches", "nbatches_test", "state_dict", "test_acc", "epoch", "iter", "train_loss", "total_loss", "opt_state_dict"}
	if !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
	sdv, _ := top.get("state_dict")
	sd := sdv.(*pyDict)
	if sd.len() != 40 || sd.keys[0] != "emb_l.0.weight" || sd.keys[39] != "top_l.4.bias" {
		t.Fatalf("state dict has %d keys: %v ... %v", sd.len(), sd.keys[0], sd.keys[len(sd.keys)-1])
	}
	if _, ok := sd.state.(*pyDict); !ok {
		t.Fatalf("OrderedDict BUILD state (_metadata) not kept: %T", sd.state)
	}
	acc, _ := top.get("test_acc")
	if f, ok := acc.(float64); !ok || f <= 0 || f >= 1 {
		t.Fatalf("test_acc = %#v", acc)
	}
}

func FuzzUnpickle(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "torch", "*.pkl"))
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range hostilePickles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := fakeTorchReader(64)
		u := newUnpickler(data, torchGlobals)
		u.persistentLoad = tr.persistentLoad
		v, err := u.run()
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if u.alloc > u.lim.maxAlloc || u.work > u.lim.maxWork {
			t.Fatalf("budget overrun: alloc %d work %d", u.alloc, u.work)
		}
		toPlain(v, 0, new(int))
		if d, ok := v.(*pyDict); ok {
			tr.name = "fuzz"
			tr.checkpoint(d) // storages have no entries: errors, never panics
		}
	})
}
