package stomp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
)

// TestReceivedMessagesAreKept: a Message the application keeps stays as
// it came while the reader goes on (the Reader hands each MESSAGE's memory
// over), whether it went straight to the channel or through the backlog,
// with bodies that share their allocation with the header text, larger
// ones and ones larger than the read buffer; changing a kept message
// changes no other.
func TestReceivedMessagesAreKept(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server)
	go io.Copy(io.Discard, server)
	sub, err := c.Subscribe(context.Background(), "/q", WithID("s"), WithBuffer(2)) // most go through the backlog
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, 100, 4 << 10, 4<<10 + 1, 40 << 10, 7}
	body := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, sizes[i%len(sizes)]) }
	const n = 50
	var wire bytes.Buffer
	for i := range n {
		b := body(i)
		fmt.Fprintf(&wire, "MESSAGE\nsubscription:s\ndestination:/q\nmessage-id:m-%d\nack:a-%d\nk:v\\c%d\ncontent-length:%d\n\n%s\x00\n",
			i, i, i, len(b), b)
	}
	go server.Write(wire.Bytes())
	var kept []Message
	for range n {
		m, ok := <-sub.C()
		if !ok {
			t.Fatal(sub.Err())
		}
		kept = append(kept, m)
	}
	for i := range kept {
		m := &kept[i]
		if m.ID != "m-"+strconv.Itoa(i) || m.ack != "a-"+strconv.Itoa(i) || m.Destination != "/q" ||
			m.Header.Get("k") != "v:"+strconv.Itoa(i) || !bytes.Equal(m.Body, body(i)) {
			t.Fatalf("kept message %d changed: id %q ack %q k %q, body of %d bytes", i, m.ID, m.ack, m.Header.Get("k"), len(m.Body))
		}
		for j := range m.Body { // write over it: the header text and the other messages stay
			m.Body[j] = 'X'
		}
		m.Body = append(m.Body, "more"...)
		m.Header.Add("added", "1")
	}
	for i := range kept {
		m := &kept[i]
		if m.ID != "m-"+strconv.Itoa(i) || m.Header.Get("k") != "v:"+strconv.Itoa(i) ||
			!bytes.Equal(m.Body, append(bytes.Repeat([]byte("X"), sizes[i%len(sizes)]), "more"...)) {
			t.Fatalf("message %d after changing them all: id %q k %q, body %q", i, m.ID, m.Header.Get("k"), m.Body)
		}
	}
	c.Close()
}

// TestBacklogReusesChunks: chunks emptied by the pump are filled again by
// later pushes, so a backlog that keeps being refilled and emptied
// allocates no chunks, and the spares are bounded.
func TestBacklogReusesChunks(t *testing.T) {
	var sp spares
	var b backlog
	cycle := func() {
		for i := range 300 {
			b.push(queued{size: int64(i)}, &sp)
		}
		k := b.head
		b = backlog{}
		for i := 0; k != nil; {
			next := k.next
			for j := range k.q {
				if k.q[j].size != int64(i) {
					t.Fatalf("entry %d holds %d", i, k.q[j].size)
				}
				k.q[j] = queued{}
				i++
			}
			sp.put(k)
			k = next
		}
	}
	cycle() // the first allocates the chunks
	if n := testing.AllocsPerRun(20, cycle); n != 0 {
		t.Fatalf("%v allocations per refill of a backlog with spares, want 0", n)
	}
	for range 2 * maxSpares {
		sp.put(&chunk{})
	}
	if sp.n != maxSpares {
		t.Fatalf("%d spares kept, want at most %d", sp.n, maxSpares)
	}
}
