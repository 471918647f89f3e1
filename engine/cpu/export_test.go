package cpu

import "unsafe"

// SetMainPanels makes b's matmul run its main tile p panels wide (16·p
// columns), and reports whether b's kernels have that tile. With
// composed, a missing main tile is made of p calls of the one-panel tile,
// so that the driver's path for wide main tiles (AVX-512's) is tested on
// any SIMD CPU. It must be called before b is used.
func SetMainPanels(b *Backend, p int, composed bool) bool {
	s := b.simd
	if s == nil || p < 1 || p >= len(s.tile[kernelRows]) {
		return false
	}
	if s.tile[kernelRows][p] == nil {
		if !composed {
			return false
		}
		one := s.tile[kernelRows][1]
		s.tile[kernelRows][p] = func(k int, a, bp *float32, ldb, pstride int, c *float32, ldc, load int, bias, pf *float32, pfBytes int) {
			for q := range p {
				var bq *float32
				if bias != nil {
					bq = (*float32)(unsafe.Add(unsafe.Pointer(bias), 4*panelCols*q))
				}
				one(k, a, (*float32)(unsafe.Add(unsafe.Pointer(bp), 4*pstride*q)), ldb, pstride,
					(*float32)(unsafe.Add(unsafe.Pointer(c), 4*panelCols*q)), ldc, load, bq, pf, pfBytes)
				pfBytes = 0
			}
		}
	}
	s.mainPanels = p
	return true
}
