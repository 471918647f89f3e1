//go:build !linux

package main

// peakRSS returns 0: cpubench reads the peak RSS on Linux only.
func peakRSS() int64 { return 0 }
