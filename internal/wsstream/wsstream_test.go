package wsstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestUTF8CheckPieces: every way of cutting valid and invalid text into
// pieces gives the same verdict as utf8.Valid on the whole.
func TestUTF8CheckPieces(t *testing.T) {
	texts := []string{
		"", "plain ascii", "héllo wörld", "日本語のテキスト", "emoji 🎉🎉", "\uFFFD replacement",
		"\xff", "a\xc3", "\xe6\x97", "\xed\xa0\x80 surrogate", "\xc0\xaf overlong", "ok\xf4\x90\x80\x80 too big",
		"\xe6\x97\xa5\x80 stray continuation", "\xf0\x9f\x8e",
	}
	for _, s := range texts {
		b := []byte(s)
		want := utf8.Valid(b)
		for cut1 := 0; cut1 <= len(b); cut1++ {
			for cut2 := cut1; cut2 <= len(b); cut2++ {
				var u utf8Check
				ok := u.feed(b[:cut1]) && u.feed(b[cut1:cut2]) && u.feed(b[cut2:]) && u.n == 0
				if ok != want {
					t.Fatalf("%q cut at %d,%d: valid=%v, want %v", s, cut1, cut2, ok, want)
				}
			}
		}
	}
}

// TestInvalidUTF8Closes1007: a text message that is not UTF-8 fails the
// connection with 1007; binary messages may hold anything; valid text
// split across messages is read as one stream.
func TestInvalidUTF8Closes1007(t *testing.T) {
	got := make(chan []byte, 1)
	errc := make(chan error, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			errc <- err
			return
		}
		defer c.CloseNow()
		sr := NewReader(r.Context(), c)
		var all []byte
		buf := make([]byte, 3) // small reads: characters are cut
		for {
			n, err := sr.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				errc <- err
				return
			}
		}
	}))
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, hs.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageText, []byte("日本"))
	ws.Write(ctx, websocket.MessageBinary, []byte("\xff\x00"))
	ws.Write(ctx, websocket.MessageText, []byte("ok\xff"))
	_, _, err = ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusInvalidFramePayloadData {
		t.Fatalf("client read %v, want close status 1007", err)
	}
	if b := <-got; !bytes.Equal(b, []byte("日本\xff\x00")) {
		t.Fatalf("stream %q", b)
	}
	if err := <-errc; !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("Read = %v, want ErrInvalidUTF8", err)
	}
}
