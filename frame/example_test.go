package frame_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stompout/stomp/frame"
)

func ExampleReader() {
	in := "\n" + // a heart-beat
		"CONNECTED\nversion:1.2\n\n\x00\n" +
		"MESSAGE\ndestination:/queue/a\nack:ID\\c42\ncontent-length:5\n\nhello\x00\n"
	r := frame.NewReader(strings.NewReader(in))
	for {
		f, err := r.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if f.Command == frame.CmdConnected {
			r.SetVersion(frame.Version(f.Header.Get(frame.HdrVersion)))
		}
		fmt.Println(f)
	}
	// Output:
	// heart-beat
	// CONNECTED version:"1.2" body=0B
	// MESSAGE destination:"/queue/a" ack:"ID:42" content-length:"5" body=5B
}

func ExampleWriter() {
	var out strings.Builder
	w := frame.NewWriter(&out)
	w.SetVersion(frame.V12)
	f := frame.New(frame.CmdSend, frame.HdrDestination, "/queue/a", "note", "a:b")
	f.Body = []byte("hello")
	if err := w.WriteFrame(f); err != nil {
		fmt.Println(err)
	}
	w.WriteHeartBeat()
	w.Flush() // one write to out for both
	fmt.Printf("%q\n", out.String())
	// Output:
	// "SEND\ndestination:/queue/a\nnote:a\\cb\n\nhello\x00\n"
}

func ExampleLimitError() {
	r := frame.NewReader(strings.NewReader("SEND\ncontent-length:999999\n\n"))
	r.SetLimits(frame.Limits{MaxBodySize: 1024})
	_, err := r.ReadFrame()
	var le *frame.LimitError
	if errors.As(err, &le) {
		fmt.Println(errors.Is(err, frame.ErrBodyTooLarge), le.Limit, le.Size)
	}
	// Output:
	// true 1024 999999
}
