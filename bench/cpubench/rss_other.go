//go:build !linux

package main

// peakRSS returns 0: cpubench reads the peak RSS on Linux only.
func peakRSS() int64 { return 0 }

// cpuSeconds returns false: cpubench reads the CPU time on Linux only.
func cpuSeconds() (float64, bool) { return 0, false }
