package kernels

// RoundMX replaces x with the values format f represents for it: each
// block of 32 (the last may be shorter) quantized as QuantizeMX does and
// decoded as DequantizeMX does, so RoundMX(f, x) equals QuantizeMX then
// DequantizeMX on x bit for bit. It is the fake quantization of an MX FC
// layer's dynamic activations, which must not fail on a batch: a block
// holding a NaN or an infinity is left as it is (its shared scale would be
// meaningless), so a non-finite input still reaches the output as one.
func RoundMX(f MXFormat, x []float32) {
	p := f.params()
	var scale [1]byte
	var codes [MXBlock]byte // 8 bits per element at most
	for b := 0; b*MXBlock < len(x); b++ {
		blk := x[b*MXBlock : min(b*MXBlock+MXBlock, len(x))]
		clear(codes[:])
		if quantizeMX(p, "", -1, blk, scale[:], codes[:]) != nil {
			continue
		}
		DequantizeMX(f, scale[:], codes[:], blk)
	}
}
