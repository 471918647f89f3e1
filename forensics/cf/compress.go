package cf

import (
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

// Compressor measures how well rows of activations compress: it quantises
// a row (Int8 or FP16) and compresses it with zstd (klauspost/compress) at
// a fixed level, in one frame without checksum, entropy-coding the
// literals of every block. Its methods may be called
// from several goroutines at once; each call owns its own buffers.
type Compressor struct {
	quant string
	level int
	enc   *zstd.Encoder
}

// NewCompressor returns a compressor that quantises as quant (Int8 or FP16)
// and compresses at zstd level (1 to 22, mapped by klauspost/compress to
// its nearest speed: 1-2 fastest, 3-5 default, 6-9 better, 10+ best).
// concurrency bounds the calls that run at once (GOMAXPROCS when below 1).
func NewCompressor(quant string, level, concurrency int) (*Compressor, error) {
	if quant != Int8 && quant != FP16 {
		return nil, fmt.Errorf("cf: quantize %q: want %s or %s", quant, Int8, FP16)
	}
	if level < 1 || level > 22 {
		return nil, fmt.Errorf("cf: zstd level %d is outside [1, 22]", level)
	}
	if concurrency < 1 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		zstd.WithEncoderCRC(false),
		zstd.WithEncoderConcurrency(concurrency),
		zstd.WithSingleSegment(true),
		zstd.WithZeroFrames(true),
		// Entropy-code literals even when a row has no repeated
		// substrings (the usual case for quantised activations): the
		// compressed size then measures how skewed the values are, which is
		// what CF is after. Without it a row with no match is stored raw
		// whatever its distribution.
		zstd.WithAllLitEntropyCompression(true),
		zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, fmt.Errorf("cf: zstd: %w", err)
	}
	return &Compressor{quant: quant, level: level, enc: enc}, nil
}

// Close releases the encoder.
func (c *Compressor) Close() error { return c.enc.Close() }

// Quant returns the quantisation, Int8 or FP16.
func (c *Compressor) Quant() string { return c.quant }

// Level returns the zstd level.
func (c *Compressor) Level() int { return c.level }

// CompressedSize returns the size of raw compressed with zstd, using buf
// as scratch space (it may grow; the grown buffer is returned).
func (c *Compressor) CompressedSize(raw, buf []byte) (int, []byte) {
	buf = c.enc.EncodeAll(raw, buf[:0])
	return len(buf), buf
}

// Ratio returns compressed/raw of one row of activations: the row is
// quantised, then compressed; raw is the quantised size (one byte per
// value for Int8, two for FP16). An empty row has ratio NaN. scratch holds
// reusable buffers (nil is allowed).
func (c *Compressor) Ratio(row []float32, scratch *Scratch) float64 {
	if len(row) == 0 {
		return nan
	}
	if scratch == nil {
		scratch = &Scratch{}
	}
	scratch.q, _ = Quantize(scratch.q[:0], row, c.quant)
	var n int
	n, scratch.z = c.CompressedSize(scratch.q, scratch.z)
	return float64(n) / float64(len(scratch.q))
}

// Scratch holds a goroutine's reusable buffers for Ratio.
type Scratch struct {
	q, z      []byte
	row, a, b []float32
}
