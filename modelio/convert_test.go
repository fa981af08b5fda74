package modelio

import (
	"encoding/binary"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/rqtools/rq/kernels"
)

// encodeAs builds a tensor of dtype d holding vals, converted by the
// dtype's natural conversion (floats narrowed, integers truncated).
func encodeAs(name string, d DType, vals []float64) Tensor {
	var b []byte
	le := binary.LittleEndian
	for _, v := range vals {
		switch d {
		case F64:
			b = le.AppendUint64(b, math.Float64bits(v))
		case F32:
			b = le.AppendUint32(b, math.Float32bits(float32(v)))
		case F16:
			b = le.AppendUint16(b, kernels.F32ToF16(float32(v)))
		case BF16:
			b = le.AppendUint16(b, kernels.F32ToBF16(float32(v)))
		case I64:
			b = le.AppendUint64(b, uint64(int64(v)))
		case I32:
			b = le.AppendUint32(b, uint32(int32(v)))
		case I16:
			b = le.AppendUint16(b, uint16(int16(v)))
		case I8:
			b = append(b, byte(int8(v)))
		case U8, Bool:
			b = append(b, byte(v))
		}
	}
	return Tensor{Name: name, DType: d, Shape: []int{len(vals)}, Data: b}
}

func TestFloat32sEveryDType(t *testing.T) {
	cases := []struct {
		d    DType
		in   []float64
		want []float32
	}{
		// 0.1 rounds to the nearest float32; 16777217 = 2^24+1 is a tie
		// between 2^24 and 2^24+2 and goes to even (2^24).
		{F64, []float64{0, 1.5, -2, 0.1, 16777217, 1e300}, []float32{0, 1.5, -2, 0.1, 16777216, float32(math.Inf(1))}},
		{F32, []float64{0, -1.25, 3e38, 1e-45}, []float32{0, -1.25, 3e38, 1e-45}},
		{F16, []float64{0, 1, -2, 0.5, 65504, 5.960464477539063e-08}, []float32{0, 1, -2, 0.5, 65504, 5.960464477539063e-08}},
		{BF16, []float64{0, 1, -2, 0.5, 3.0e38}, []float32{0, 1, -2, 0.5, kernels.BF16ToF32(kernels.F32ToBF16(3e38))}},
		{I64, []float64{0, -1, 16777216, 1 << 40}, []float32{0, -1, 16777216, 1 << 40}},
		{I32, []float64{0, -1, 2147483647, -2147483648}, []float32{0, -1, 2147483648, -2147483648}},
		{I16, []float64{0, -1, 32767, -32768}, []float32{0, -1, 32767, -32768}},
		{I8, []float64{0, -1, 127, -128}, []float32{0, -1, 127, -128}},
		{U8, []float64{0, 1, 255}, []float32{0, 1, 255}},
		{Bool, []float64{0, 1, 1}, []float32{0, 1, 1}},
	}
	seen := map[DType]bool{}
	for _, c := range cases {
		seen[c.d] = true
		tn := encodeAs("x", c.d, c.in)
		got, err := Float32s(&tn)
		if err != nil {
			t.Fatalf("%s: %v", c.d, err)
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("%s: Float32s = %v, want %v", c.d, got, c.want)
		}
	}
	for _, d := range allDTypes {
		if !seen[d] {
			t.Errorf("dtype %s not tested", d)
		}
	}
	// I64 extremes round to nearest.
	tn := I64Tensor("big", []int{2}, []int64{math.MaxInt64, 1<<53 + 1})
	got, err := Float32s(&tn)
	if err != nil || got[0] != 9.223372e18 || got[1] != float32(1<<53) {
		t.Fatalf("Float32s(I64 extremes) = %v, %v", got, err)
	}
	// NaN survives F16 and BF16.
	h := Tensor{Name: "nan", DType: F16, Shape: []int{1}, Data: []byte{0x00, 0x7e}}
	if got, err := Float32s(&h); err != nil || !math.IsNaN(float64(got[0])) {
		t.Fatalf("F16 NaN -> %v, %v", got, err)
	}
}

func TestInt64sEveryDType(t *testing.T) {
	cases := []struct {
		d    DType
		in   []float64
		want []int64
	}{
		{F64, []float64{0, -3, 1 << 52, -(1 << 63)}, []int64{0, -3, 1 << 52, math.MinInt64}},
		{F32, []float64{0, -3, 16777216}, []int64{0, -3, 16777216}},
		{F16, []float64{0, -3, 2048}, []int64{0, -3, 2048}},
		{BF16, []float64{0, -3, 256}, []int64{0, -3, 256}},
		{I32, []float64{0, -1, 2147483647, -2147483648}, []int64{0, -1, 2147483647, -2147483648}},
		{I16, []float64{0, -1, 32767, -32768}, []int64{0, -1, 32767, -32768}},
		{I8, []float64{0, -1, 127, -128}, []int64{0, -1, 127, -128}},
		{U8, []float64{0, 1, 255}, []int64{0, 1, 255}},
		{Bool, []float64{0, 1}, []int64{0, 1}},
	}
	for _, c := range cases {
		tn := encodeAs("x", c.d, c.in)
		got, err := Int64s(&tn)
		if err != nil {
			t.Fatalf("%s: %v", c.d, err)
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("%s: Int64s = %v, want %v", c.d, got, c.want)
		}
	}
	// I64 is exact over its whole range.
	v := []int64{0, -1, math.MaxInt64, math.MinInt64, 1<<53 + 1}
	tn := I64Tensor("ids", []int{5}, v)
	if got, err := Int64s(&tn); err != nil || !slices.Equal(got, v) {
		t.Fatalf("Int64s(I64) = %v, %v", got, err)
	}
}

func TestInt64sRejectsNonIntegral(t *testing.T) {
	cases := []struct {
		d  DType
		in []float64
	}{
		{F32, []float64{1, 1.5}},
		{F64, []float64{math.NaN()}},
		{F64, []float64{math.Inf(-1)}},
		{F64, []float64{1 << 63}},
		{F16, []float64{0.5}},
		{BF16, []float64{math.Inf(1)}},
	}
	for _, c := range cases {
		tn := encodeAs("ids_as_float", c.d, c.in)
		_, err := Int64s(&tn)
		if err == nil || !strings.Contains(err.Error(), `"ids_as_float"`) || !strings.Contains(err.Error(), "element") {
			t.Errorf("%s %v: error %v, want one naming the tensor and element", c.d, c.in, err)
		}
	}
}

func TestConvertBadTensors(t *testing.T) {
	cases := []Tensor{
		{Name: "short", DType: F32, Shape: []int{2}, Data: make([]byte, 7)},
		{Name: "long", DType: I64, Shape: []int{1}, Data: make([]byte, 9)},
		{Name: "neg", DType: U8, Shape: []int{-1}, Data: nil},
		{Name: "unknown", DType: "Q4", Shape: []int{1}, Data: make([]byte, 1)},
		{Name: "badbool", DType: Bool, Shape: []int{2}, Data: []byte{1, 2}},
	}
	for _, c := range cases {
		if _, err := Float32s(&c); err == nil || !strings.Contains(err.Error(), `"`+c.Name+`"`) {
			t.Errorf("Float32s(%s): %v", c.Name, err)
		}
		if _, err := Int64s(&c); err == nil || !strings.Contains(err.Error(), `"`+c.Name+`"`) {
			t.Errorf("Int64s(%s): %v", c.Name, err)
		}
		if v, ok := Float32View(&c); ok {
			t.Errorf("Float32View(%s) = %v, true", c.Name, v)
		}
	}
}

func TestFloat32View(t *testing.T) {
	v := []float32{1, -2, 3.5, float32(math.Inf(1))}
	tn := F32Tensor("w", []int{2, 2}, v)
	view, ok := Float32View(&tn)
	if !hostLittleEndian {
		if ok {
			t.Fatal("view on a big-endian host")
		}
		return
	}
	if !ok || !slices.Equal(view, v) {
		t.Fatalf("Float32View = %v, %v", view, ok)
	}
	if unsafe.Pointer(&view[0]) != unsafe.Pointer(&tn.Data[0]) {
		t.Fatal("view is a copy")
	}
	// Misaligned data: a 4-byte-aligned buffer offset by one byte.
	buf := make([]uint32, 5)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), 20)
	copy(raw[1:], tn.Data)
	mis := Tensor{Name: "m", DType: F32, Shape: []int{4}, Data: raw[1:17]}
	if _, ok := Float32View(&mis); ok {
		t.Fatal("view of misaligned data")
	}
	if got, err := Float32s(&mis); err != nil || !slices.Equal(got, v) {
		t.Fatalf("Float32s(misaligned) = %v, %v", got, err)
	}
	ids := I64Tensor("i", []int{1}, []int64{1})
	if _, ok := Float32View(&ids); ok {
		t.Fatal("view of an I64 tensor")
	}
	empty := F32Tensor("e", []int{0, 8}, nil)
	if got, ok := Float32View(&empty); !ok || len(got) != 0 {
		t.Fatalf("empty view = %v, %v", got, ok)
	}
}

func TestBuildersCopy(t *testing.T) {
	shape := []int{3}
	v := []float32{1, 2, 3}
	tn := F32Tensor("f", shape, v)
	shape[0], v[0] = 9, 9
	if tn.Shape[0] != 3 || tn.DType != F32 || tn.Name != "f" {
		t.Fatalf("F32Tensor = %v", &tn)
	}
	if got, err := Float32s(&tn); err != nil || !slices.Equal(got, []float32{1, 2, 3}) {
		t.Fatalf("F32Tensor data = %v, %v", got, err)
	}
	if binary.LittleEndian.Uint32(tn.Data) != math.Float32bits(1) {
		t.Fatal("F32Tensor data is not little-endian")
	}
	iv := []int64{-1, 2}
	it := I64Tensor("i", []int{1, 2}, iv)
	iv[0] = 5
	if it.DType != I64 || !slices.Equal(it.Shape, []int{1, 2}) || binary.LittleEndian.Uint64(it.Data) != math.MaxUint64 {
		t.Fatalf("I64Tensor = %v %v", &it, it.Data)
	}
}
