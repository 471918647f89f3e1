package cpu_test

import (
	"fmt"
	"testing"

	"github.com/modelforensics/fx/engine/backendtest"
	"github.com/modelforensics/fx/engine/cpu"
)

func TestGradConformance(t *testing.T) {
	for _, workers := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			backendtest.RunGrad(t, cpu.New(cpu.WithWorkers(workers)))
		})
	}
}
