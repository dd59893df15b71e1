//go:build !unix

package stomp

import "time"

// processCPU cannot tell the process's CPU time here: -1.
func processCPU() time.Duration { return -1 }
