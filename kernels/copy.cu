// copy.cu — fx's data movement: gathering rows (Embedding, Rows, Gather),
// copying column ranges (SliceLast, Concat, ConcatLast), writing rows at a
// position read from the device (SetRowsAt), scattering rows back with
// accumulation (ScatterRows), and summing over an axis (SumAxis).
//
// Reference: engine/cpu (gather.go, grad.go, elementwise.go). Copies are
// exact. fx_sum_axis sums in float64 in index order and rounds once, as the
// CPU does, so its results equal the CPU's bit for bit. fx_scatter_add_rows
// adds in float32 in the order of idx; the CPU sums repeated rows in
// float64 (rows hit once are exact copies on both).
//
// Version 1 of each (the only one).
#include "fx_cuda.h"

// fx_gather_rows: y[r, c] = x[idx[r], c] for r < n, c < D (x viewed as
// [R, D]; the host checks 0 <= idx[r] < R; a negative one is skipped).
// Geometry: block 256, grid (ceil(D/256), min(n, 65535)), grid-stride over r
// along y.
extern "C" __global__ void fx_gather_rows(float* y, const float* x, const int* idx, int n, int D) {
  unsigned c = bid_x() * bdim_x() + tid_x();
  if (c >= (unsigned)D) return;
  for (unsigned r = bid_y(); r < (unsigned)n; r += gdim_y()) {
    int j = idx[r];
    if (j < 0) continue;
    y[(unsigned long long)r * (unsigned)D + c] = x[(unsigned long long)j * (unsigned)D + c];
  }
}

// fx_gather_rows_at: fx_gather_rows with the indices as float32 values
// (Gather): y[r, c] = x[fx_index(idx[r]), c], or NaN where that is not a
// row of x [R, D].
// Geometry: as fx_gather_rows.
extern "C" __global__ void fx_gather_rows_at(float* y, const float* x, const float* idx, int n, int D, int R) {
  unsigned c = bid_x() * bdim_x() + tid_x();
  if (c >= (unsigned)D) return;
  for (unsigned r = bid_y(); r < (unsigned)n; r += gdim_y()) {
    int j = fx_index(idx[r]);
    y[(unsigned long long)r * (unsigned)D + c] =
        j >= 0 && j < R ? x[(unsigned long long)j * (unsigned)D + c] : __builtin_nanf("");
  }
}

// fx_set_rows_at (SetRowsAt): dst[b, r0 + t, c] = src[b, t, c] for b < B,
// t < T, c < inner, where r0 = fx_index(*at); dst is [B, R, inner], src
// [B, T, inner]. Rows r0 + t outside [0, R) are not written, nor is any
// when *at is not an index.
// Geometry: block 256, grid (ceil(inner/256), min(B·T, 65535)), grid-stride
// over the B·T rows along y.
extern "C" __global__ void fx_set_rows_at(float* dst, const float* src, const float* at, int B, int R, int T,
                                          int inner) {
  unsigned c = bid_x() * bdim_x() + tid_x();
  const int r0 = fx_index(*at);
  if (c >= (unsigned)inner || r0 < 0) return;
  for (unsigned bt = bid_y(); bt < (unsigned)B * (unsigned)T; bt += gdim_y()) {
    unsigned b = bt / (unsigned)T, t = bt % (unsigned)T;
    long long r = (long long)r0 + t;
    if (r >= R) continue;
    dst[((unsigned long long)b * (unsigned)R + r) * (unsigned)inner + c] =
        src[(unsigned long long)bt * (unsigned)inner + c];
  }
}

// fx_copy_cols: dst[r·dstCols + dstOff + c] = src[r·srcCols + srcOff + c]
// for r < rows, c < n.
// Geometry: block 256, grid (ceil(n/256), min(rows, 65535)), grid-stride
// over r along y.
extern "C" __global__ void fx_copy_cols(float* dst, int dstCols, int dstOff, const float* src, int srcCols,
                                        int srcOff, int rows, int n) {
  unsigned c = bid_x() * bdim_x() + tid_x();
  if (c >= (unsigned)n) return;
  for (unsigned r = bid_y(); r < (unsigned)rows; r += gdim_y())
    dst[(long long)r * dstCols + dstOff + c] = src[(long long)r * srcCols + srcOff + c];
}

// fx_scatter_add_rows: for r = 0, …, n-1 in order, y[idx[r], c] += x[r, c]
// (float32), for every column c < D; y is zeroed by the host. One thread
// per column walks all r, so repeated indices accumulate deterministically
// and no two threads touch the same element. A negative idx is skipped.
// Geometry: block 256, grid ceil(D/256) 1-D.
extern "C" __global__ void fx_scatter_add_rows(float* y, const float* x, const int* idx, int n, int D) {
  unsigned c = bid_x() * bdim_x() + tid_x();
  if (c >= (unsigned)D) return;
  for (int r = 0; r < n; r++) {
    int j = idx[r];
    if (j < 0) continue;
    float* p = y + (unsigned long long)j * (unsigned)D + c;
    *p = fx_add_rn(*p, x[(unsigned long long)r * (unsigned)D + c]);
  }
}

// fx_sum_axis: y[o·inner + i] = Σ_{j<n} x[(o·n + j)·inner + i], summed in
// float64 in order of j and rounded once (bit-identical to engine/cpu).
// Geometry: block 256, grid min(ceil(outer·inner/256), 65535) 1-D,
// grid-stride over the outer·inner outputs, one thread per output.
extern "C" __global__ void fx_sum_axis(float* y, const float* x, int outer, int n, int inner) {
  if (outer <= 0 || inner <= 0) return;
  long long total = (long long)outer * inner;
  if (total >= (1ll << 31)) return;
  for (unsigned e = bid_x() * bdim_x() + tid_x(); e < (unsigned)total; e += bdim_x() * gdim_x()) {
    unsigned o = e / (unsigned)inner, i = e % (unsigned)inner;
    const float* p = x + (unsigned long long)o * (unsigned)n * (unsigned)inner + i;
    double s = 0.0;
    for (int j = 0; j < n; j++) s += (double)p[(unsigned long long)j * (unsigned)inner];
    y[e] = (float)s;
  }
}
