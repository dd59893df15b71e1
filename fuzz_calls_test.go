package stomp

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// FuzzCallsAndFrames interleaves user calls with what a scripted server
// sends, both chosen by the input: subscriptions that overflow, ACKs after
// UNSUBSCRIBE, receipts answered, twice or never, transactions used after
// they end, ERROR frames, a server that closes, Close and Disconnect at
// any point. Nothing may panic or hang; once the connection has ended,
// every receipt is resolved, every channel closed, and nothing is left in
// Subscriptions or Transactions.
func FuzzCallsAndFrames(f *testing.F) {
	f.Add([]byte{0, 3, 3, 3, 5, 1, 5, 2, 4, 6, 6, 7, 6, 2, 8})
	f.Add([]byte{2, 2, 4, 4, 0, 3, 1, 1, 9})
	f.Add([]byte{6, 16, 22, 2, 28, 10, 0, 13, 3, 3, 3, 12})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			ops = ops[:64]
		}
		c, p := connectPeer(t, V12, []Option{WithUnroutedBuffer(2)})
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			subs     []*Subscription
			receipts []*Receipt
			txs      []*Tx
			last     Message
		)
		keep := func(r *Receipt) {
			if r == nil {
				t.Error("nil receipt")
				return
			}
			mu.Lock()
			receipts = append(receipts, r)
			mu.Unlock()
		}
		ctxFor := func(b byte) (context.Context, context.CancelFunc) {
			if b%4 == 0 {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			}
			return context.WithTimeout(context.Background(), time.Duration(b%4)*time.Millisecond)
		}
		rcpt := 0
		for i, op := range ops {
			arg := byte(i) ^ op>>4
			switch op % 16 {
			case 0:
				var r *Receipt
				s, err := c.Subscribe(context.Background(), "/q", WithBuffer(int(arg%3)+1),
					WithAck([]AckMode{AckAuto, AckClient, AckClientIndividual}[arg%3]), WithReceipt(&r),
					WithOverflow(Overflow(arg/3%3)))
				keep(r)
				if err == nil {
					subs = append(subs, s)
				}
			case 1:
				if len(subs) > 0 {
					s := subs[int(arg)%len(subs)]
					ctx, cancel := ctxFor(arg)
					wg.Go(func() { defer cancel(); s.Unsubscribe(ctx) })
					wg.Go(func() { s.Unsubscribe(context.Background()) })
				}
			case 2:
				ctx, cancel := ctxFor(arg)
				var r *Receipt
				c.Send(ctx, "/q", []byte("x"), WithReceipt(&r))
				cancel()
				keep(r)
			case 3:
				fmt.Fprintf(p.Conn, "MESSAGE\nsubscription:sub-%d\ndestination:/q\nmessage-id:%d\nack:a%d\n\nm\x00", arg%4, i, i)
			case 4:
				rcpt++
				fmt.Fprintf(p.Conn, "RECEIPT\nreceipt-id:rcpt-%d\n\n\x00", int(arg)%(rcpt+1))
			case 5:
				for _, s := range subs {
					select {
					case m, ok := <-s.C():
						if ok {
							last = m
						}
					default:
					}
				}
				m := last
				wg.Go(func() {
					var r *Receipt
					m.Ack(context.Background(), WithReceipt(&r))
					keep(r)
				})
			case 6:
				var r *Receipt
				if tx, err := c.Begin(context.Background(), WithReceipt(&r)); err == nil {
					txs = append(txs, tx)
				}
				keep(r)
			case 7:
				if len(txs) > 0 {
					tx := txs[int(arg)%len(txs)]
					ctx, cancel := ctxFor(arg)
					wg.Go(func() {
						defer cancel()
						var r *Receipt
						if arg%2 == 0 {
							tx.Commit(ctx, WithReceipt(&r))
						} else {
							tx.Abort(ctx, WithReceipt(&r))
						}
						keep(r)
					})
					wg.Go(func() {
						var r *Receipt
						tx.Send(context.Background(), "/q", nil, WithReceipt(&r))
						keep(r)
					})
				}
			case 8:
				wg.Go(func() { c.Close() })
			case 9:
				wg.Go(func() {
					ctx, cancel := ctxFor(arg)
					defer cancel()
					c.Disconnect(ctx)
				})
			case 10:
				fmt.Fprintf(p.Conn, "ERROR\nmessage:no\n\n\x00")
			case 11:
				p.Close()
			case 12:
				wg.Go(func() {
					c.Transact(context.Background(), func(tx *Tx) error {
						tx.Send(context.Background(), "/q", nil)
						if arg%2 == 0 {
							return fmt.Errorf("no")
						}
						return nil
					})
				})
			case 13:
				p.Conn.Write([]byte{'\n', arg})
			case 14:
				c.Subscriptions()
				c.Transactions()
			case 15:
				select {
				case <-c.Unrouted():
				default:
				}
			}
		}
		// Answer what is outstanding, then end: Transact waits for its
		// COMMIT's receipt, which the server may never send.
		c.Close()
		wg.Wait()
		<-c.Done()
		checkEnded(t, c, receipts, subs)
	})
}
