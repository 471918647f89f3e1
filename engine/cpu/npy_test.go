package cpu_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// npyArray is a little-endian, C-ordered .npy array of float32 or int32.
type npyArray struct {
	shape []int
	f32   []float32 // descr '<f4'
	i32   []int32   // descr '<i4'
}

var (
	npyDescr = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	npyOrder = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShape = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// readNPY parses a version 1-3 .npy file holding '<f4' or '<i4' data.
func readNPY(data []byte) (*npyArray, error) {
	if len(data) < 10 || string(data[:6]) != "\x93NUMPY" {
		return nil, fmt.Errorf("npy: bad magic")
	}
	var hlen, off int
	switch data[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(data[8:10])), 10
	case 2, 3:
		if len(data) < 12 {
			return nil, fmt.Errorf("npy: short header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(data[8:12])), 12
	default:
		return nil, fmt.Errorf("npy: version %d", data[6])
	}
	if off+hlen > len(data) {
		return nil, fmt.Errorf("npy: short header")
	}
	header, body := string(data[off:off+hlen]), data[off+hlen:]
	d, o, s := npyDescr.FindStringSubmatch(header), npyOrder.FindStringSubmatch(header), npyShape.FindStringSubmatch(header)
	if d == nil || o == nil || s == nil {
		return nil, fmt.Errorf("npy: header %q", header)
	}
	if o[1] != "False" {
		return nil, fmt.Errorf("npy: Fortran order")
	}
	a := &npyArray{shape: []int{}}
	n := 1
	for _, f := range strings.Split(s[1], ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("npy: shape %q", s[1])
		}
		a.shape = append(a.shape, v)
		n *= v
	}
	if len(body) != 4*n {
		return nil, fmt.Errorf("npy: %d bytes of data for %d elements", len(body), n)
	}
	switch d[1] {
	case "<f4":
		a.f32 = make([]float32, n)
		for i := range a.f32 {
			a.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(body[4*i:]))
		}
	case "<i4":
		a.i32 = make([]int32, n)
		for i := range a.i32 {
			a.i32[i] = int32(binary.LittleEndian.Uint32(body[4*i:]))
		}
	default:
		return nil, fmt.Errorf("npy: dtype %q", d[1])
	}
	return a, nil
}

// loadNPY reads testdata/golden/name.npy.
func loadNPY(t *testing.T, name string) *npyArray {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden", name+".npy"))
	require.NoError(t, err)
	a, err := readNPY(data)
	require.NoError(t, err, name)
	return a
}

func TestReadNPY(t *testing.T) {
	hdr := func(h string) []byte {
		b := append([]byte("\x93NUMPY\x01\x00"), byte(len(h)), 0)
		return append(b, h...)
	}
	tests := []struct {
		name    string
		data    []byte
		shape   []int
		f32     []float32
		i32     []int32
		wantErr bool
	}{
		{
			name:  "f32 matrix",
			data:  append(hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }\n"), 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0),
			shape: []int{1, 2},
			f32:   []float32{1, -2},
		},
		{
			name:  "i32 vector",
			data:  append(hdr("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }\n"), 0xff, 0xff, 0xff, 0xff),
			shape: []int{1},
			i32:   []int32{-1},
		},
		{
			name:  "scalar",
			data:  append(hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n"), 0, 0, 0, 0),
			shape: []int{},
			f32:   []float32{0},
		},
		{name: "bad magic", data: []byte("NUMPY\x01\x00\x00\x00\x00"), wantErr: true},
		{name: "float64", data: append(hdr("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n"), make([]byte, 8)...), wantErr: true},
		{name: "fortran", data: append(hdr("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }\n"), make([]byte, 4)...), wantErr: true},
		{name: "short", data: append(hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"), make([]byte, 4)...), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := readNPY(tc.data)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.shape, a.shape)
			require.Equal(t, tc.f32, a.f32)
			require.Equal(t, tc.i32, a.i32)
		})
	}
}
