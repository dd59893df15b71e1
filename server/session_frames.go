package server

import (
	"slices"
	"strconv"
	"strings"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// supported lists the versions the engine speaks, highest first, and how
// an ERROR frame lists them.
var supported = []frame.Version{frame.V12, frame.V11, frame.V10}

const supportedHeader = "1.0,1.1,1.2"

// transaction is an open transaction: the frames to process at COMMIT.
// Reader goroutine only.
type transaction struct {
	ops   []txOp
	acks  map[string]struct{} // the keys of its ACK and NACK ops
	bytes int                 // what its ops count toward WithTransactionBytes
}

// txOp is a buffered SEND (msg set) or ACK/NACK (cmd set).
type txOp struct {
	msg    *Message
	cmd    string
	header frame.Header // the ACK/NACK frame's headers
	key    string       // the ACK/NACK's id and subscription (ackKey), to find duplicates
}

// size is what the op counts toward WithTransactionBytes: the message's
// body and headers, or the ACK's headers.
func (op *txOp) size() int {
	if op.msg != nil {
		return sendSize(op.msg)
	}
	n := 0
	for k, v := range op.header.All() {
		n += len(k) + len(v) + 2
	}
	return n
}

// handle processes one frame on the reader goroutine. A non-nil error ends
// the session with an ERROR; errDisconnected ends it gracefully.
func (s *Session) handle(f *frame.Frame) (err error) {
	// A panicking Handler ends this session (ERROR "internal error"), not
	// the process.
	defer s.recovered(f.Command, &err)
	// A receipt that cannot be echoed in the session's version (a value
	// ending in a carriage return, before 1.2) would leave the client
	// waiting for a RECEIPT that is never written.
	receipt, hasReceipt := f.Header.Lookup(frame.HdrReceipt)
	if hasReceipt && frame.CheckHeader(s.wireVersion(), frame.HdrReceiptID, receipt) != nil {
		return violation(f.Command, "invalid receipt header", "the receipt cannot be echoed in a receipt-id header")
	}
	if !s.connected.Load() {
		if f.Command == frame.CmdConnect || f.Command == frame.CmdStomp {
			return s.onConnect(f)
		}
		return violation(f.Command, "not connected", "the first frame must be CONNECT or STOMP")
	}
	if hasReceipt && slices.Contains(viewed, f.Command) {
		// The frame's header strings are views of the Reader's buffer
		// (SetViews in newSession); the receipt outlives the frame.
		receipt = strings.Clone(receipt)
	}
	s.curReceipt, s.curHasReceipt = receipt, hasReceipt
	// The handler runs on this goroutine: while it does, nothing is read,
	// and the client's silence means nothing (wire.Liveness counts silence
	// only inside a read).
	err = s.dispatch(f)
	if err != nil {
		s.mu.Lock()
		s.cur = nil
		s.mu.Unlock()
		return err
	}
	return s.complete()
}

// dispatch handles a frame of a connected session by its command.
func (s *Session) dispatch(f *frame.Frame) (err error) {
	switch f.Command {
	case frame.CmdSend:
		err = s.onSend(f)
	case frame.CmdSubscribe:
		err = s.onSubscribe(f)
	case frame.CmdUnsubscribe:
		err = s.onUnsubscribe(f)
	case frame.CmdAck, frame.CmdNack:
		if f.Command == frame.CmdNack && s.version == frame.V10 {
			return violation(f.Command, "unknown command", "NACK is not a STOMP 1.0 command")
		}
		err = s.onAck(f)
	case frame.CmdBegin:
		err = s.onBegin(f)
	case frame.CmdCommit:
		err = s.onCommit(f)
	case frame.CmdAbort:
		err = s.onAbort(f)
	case frame.CmdDisconnect:
		return s.onDisconnect(f)
	case frame.CmdConnect, frame.CmdStomp:
		return violation(f.Command, "already connected", "a session accepts one CONNECT")
	default: // CONNECTED, MESSAGE, RECEIPT, ERROR
		return violation(f.Command, "unexpected frame", f.Command+" is a server frame")
	}
	return err
}

// negotiate returns the highest version in the accept-version value av
// that the engine speaks, tolerating spaces around the commas. A missing
// header means 1.0.
func negotiate(av string, present bool) (frame.Version, bool) {
	if !present {
		return frame.V10, true
	}
	offered := strings.Split(av, ",")
	for _, v := range supported {
		for _, o := range offered {
			if frame.Version(strings.TrimSpace(o)) == v {
				return v, true
			}
		}
	}
	return "", false
}

func (s *Session) onConnect(f *frame.Frame) error {
	cmd := f.Command
	if f.Header.Has(frame.HdrReceipt) {
		return violation(cmd, "receipt not allowed on "+cmd, "the server answers CONNECT with CONNECTED, not RECEIPT")
	}
	av, present := f.Header.Lookup(frame.HdrAcceptVersion)
	v, ok := negotiate(av, present)
	if !ok {
		pe := violation(cmd, "unsupported protocol version", "Supported protocol versions are 1.0 1.1 1.2")
		ef := s.errorFrame(pe, "")
		ef.Header.Add(frame.HdrVersion, supportedHeader)
		s.shutdown(pe, ef)
		return pe
	}
	host, hasHost := f.Header.Lookup(frame.HdrHost)
	if v != frame.V10 && !hasHost && s.srv.cfg.requireHost {
		return violation(cmd, "missing host header", "STOMP "+string(v)+" requires a host header")
	}
	var hb heartbeat.Settings
	if v != frame.V10 {
		var err error
		if hb, err = heartbeat.Parse(f.Header.Get(frame.HdrHeartBeat)); err != nil {
			return violation(cmd, "invalid heart-beat header", err.Error())
		}
	}
	passcode := f.Header.Get(frame.HdrPasscode)
	s.mu.Lock()
	s.passcode = passcode
	s.mu.Unlock()
	req := &ConnectRequest{
		Command:   cmd,
		Version:   v,
		Host:      host,
		Login:     f.Header.Get(frame.HdrLogin),
		Passcode:  passcode,
		HeartBeat: hb,
		Header:    f.Header.Clone(),
	}
	if err := s.srv.h.Connect(s.ctx, s, req); err != nil {
		return err
	}
	s.id = req.SessionID
	if s.id != "" && frame.CheckHeader(frame.V10, frame.HdrSession, s.id) != nil {
		// CONNECTED is never escaped: such an id would make it
		// unwritable, and the client would wait for it in vain.
		s.srv.cfg.logger.Warn("stomp session id from handler cannot be written; using another", "id", s.id)
		s.id = ""
	}
	if s.id == "" {
		s.id = s.srv.newSessionID()
	}
	s.version, s.login = v, req.Login

	cf := &frame.Frame{Command: frame.CmdConnected}
	start := &hbStart{version: v}
	if v != frame.V10 {
		own := heartbeat.Settings{Send: s.srv.cfg.hbSend, Recv: s.srv.cfg.hbRecv}
		send, recv := heartbeat.Negotiate(own, hb)
		start.send = send
		if recv > 0 {
			mon := heartbeat.NewMonitor(recv, 0)
			// A silent client ends the session even while the writer is
			// stuck in a write to it (no write deadline on the transport).
			mon.OnDead(func() {
				s.shutdown(mon.Err(), nil)
				s.abortTransport()
			})
			s.live.SetMonitor(mon)
		}
		cf.Header.Add(frame.HdrVersion, string(v))
		cf.Header.Add(frame.HdrHeartBeat, own.String())
	}
	cf.Header.Add(frame.HdrSession, s.id)
	if s.srv.cfg.name != "" {
		cf.Header.Add(frame.HdrServer, s.srv.cfg.name)
	}
	s.r.SetVersion(v)
	s.connected.Store(true)
	s.stopConnectTimer()
	return s.enqueue(outItem{f: cf, hb: start})
}

func (s *Session) onSend(f *frame.Frame) error {
	dest := f.Header.Get(frame.HdrDestination)
	if dest == "" {
		return violation(f.Command, "missing destination header", "SEND requires a destination header")
	}
	m := newMessage(f) // m.Destination is dest, in m's memory
	// Del only what is there: it rewrites every entry it keeps.
	if s.curHasReceipt {
		m.Header.Del(frame.HdrReceipt)
	}
	if tx, ok := f.Header.Lookup(frame.HdrTransaction); ok {
		m.Header.Del(frame.HdrTransaction)
		return s.txAdd(f.Command, tx, txOp{msg: m})
	}
	m.Receipt = s.curReceipt
	return s.callSend(m)
}

func (s *Session) onSubscribe(f *frame.Frame) error {
	cmd := f.Command
	dest := f.Header.Get(frame.HdrDestination)
	if dest == "" {
		return violation(cmd, "missing destination header", "SUBSCRIBE requires a destination header")
	}
	id, explicit := f.Header.Lookup(frame.HdrID)
	if !explicit || id == "" {
		if s.version != frame.V10 {
			return violation(cmd, "missing id header", "SUBSCRIBE requires an id header")
		}
		id, explicit = dest, false
	}
	mode := AckMode(f.Header.Get(frame.HdrAck))
	switch mode {
	case "":
		mode = AckAuto
	case AckAuto, AckClient, AckClientIndividual:
	default:
		return violation(cmd, "invalid ack mode", "ack must be auto, client or client-individual")
	}
	sub := &Subscription{ID: id, Destination: dest, Ack: mode, Header: f.Header.Clone(), session: s, explicit: explicit}
	s.mu.Lock()
	if s.subs[id] != nil {
		s.mu.Unlock()
		return violation(cmd, "duplicate subscription id", "subscription "+id+" already exists")
	}
	if len(s.subs) >= s.srv.cfg.subLimit {
		s.mu.Unlock()
		return violation(cmd, "too many subscriptions", "a session may hold "+strconv.Itoa(s.srv.cfg.subLimit)+" subscriptions")
	}
	if s.subs == nil {
		s.subs = make(map[string]*Subscription)
	}
	s.subs[id] = sub
	s.mu.Unlock()
	if err := s.srv.h.Subscribe(s.ctx, s, sub); err != nil {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Session) onUnsubscribe(f *frame.Frame) error {
	cmd := f.Command
	id, ok := f.Header.Lookup(frame.HdrID)
	dest := ""
	if !ok && s.version == frame.V10 {
		dest = f.Header.Get(frame.HdrDestination)
	}
	if !ok && dest == "" {
		return violation(cmd, "missing id header", "UNSUBSCRIBE requires an id header")
	}
	s.mu.Lock()
	sub := s.subs[id]
	if dest != "" {
		for _, c := range s.subs {
			if c.Destination == dest {
				sub = c
				break
			}
		}
	}
	if sub != nil {
		delete(s.subs, sub.ID)
		s.forget(sub)
	}
	s.mu.Unlock()
	if sub == nil {
		return violation(cmd, "unknown subscription", "no subscription "+id+dest)
	}
	return s.srv.h.Unsubscribe(s.ctx, s, sub)
}

// ackIDHeader is the header an ACK or NACK names its message by: id (the
// MESSAGE's ack header) in 1.2, message-id before.
func (s *Session) ackIDHeader() string {
	if s.version == frame.V12 {
		return frame.HdrID
	}
	return frame.HdrMessageID
}

// ackKey returns the id an ACK or NACK refers to and the subscription it
// names, per version: 1.2 id; 1.1 message-id and subscription; 1.0
// message-id.
func (s *Session) ackKey(f *frame.Frame) (id, subID string, err error) {
	id = f.Header.Get(s.ackIDHeader())
	if s.version == frame.V12 {
		if id == "" {
			return "", "", violation(f.Command, "missing id header", f.Command+" requires an id header (the MESSAGE's ack header)")
		}
		return id, "", nil
	}
	if id == "" {
		return "", "", violation(f.Command, "missing message-id header", f.Command+" requires a message-id header")
	}
	return id, f.Header.Get(frame.HdrSubscription), nil
}

func (s *Session) onAck(f *frame.Frame) error {
	if tx, ok := f.Header.Lookup(frame.HdrTransaction); ok {
		if _, err := s.resolve(f, false); err != nil {
			return err
		}
		// Twice the same message in one transaction would fail at COMMIT,
		// half-way through: refuse it now.
		id, subID, _ := s.ackKey(f)
		key := id + "\x00" + subID
		if t := s.txs[tx]; t != nil {
			if _, dup := t.acks[key]; dup {
				return violation(f.Command, "already acknowledged in transaction", "message "+id+" is already acknowledged or nacked in transaction "+tx)
			}
		}
		// The header's strings may be views of the Reader's buffer
		// (SetViews in newSession): the transaction keeps a copy.
		return s.txAdd(f.Command, tx, txOp{cmd: f.Command, header: ownHeader(&f.Header), key: key})
	}
	a, err := s.resolve(f, true)
	if err != nil {
		return err
	}
	return s.ack(f.Command, a)
}

func (s *Session) ack(cmd string, a *Ack) error {
	if cmd == frame.CmdNack {
		return s.srv.h.Nack(s.ctx, s, a)
	}
	return s.srv.h.Ack(s.ctx, s, a)
}

// txID returns f's transaction header, which BEGIN, COMMIT and ABORT
// require.
func txID(f *frame.Frame) (string, error) {
	tx := f.Header.Get(frame.HdrTransaction)
	if tx == "" {
		return "", violation(f.Command, "missing transaction header", f.Command+" requires a transaction header")
	}
	return tx, nil
}

func (s *Session) txAdd(cmd, tx string, op txOp) error {
	t := s.txs[tx]
	if t == nil {
		return violation(cmd, "unknown transaction", "no transaction "+tx)
	}
	if s.txFrames >= s.srv.cfg.txLimit {
		return violation(cmd, "transaction too large", "open transactions may hold "+strconv.Itoa(s.srv.cfg.txLimit)+" frames")
	}
	size := op.size()
	if s.txBytes+size > s.srv.cfg.txBytes {
		return violation(cmd, "transaction too large", "open transactions may hold "+strconv.Itoa(s.srv.cfg.txBytes)+" bytes")
	}
	s.txFrames++
	s.txBytes += size
	t.ops = append(t.ops, op)
	t.bytes += size
	if op.key != "" {
		if t.acks == nil {
			t.acks = make(map[string]struct{})
		}
		t.acks[op.key] = struct{}{}
	}
	return nil
}

func (s *Session) onBegin(f *frame.Frame) error {
	tx, err := txID(f)
	if err != nil {
		return err
	}
	if s.txs[tx] != nil {
		return violation(f.Command, "transaction already started", "transaction "+tx+" is open")
	}
	// An open transaction counts as a frame, so that a client cannot
	// open transactions without end.
	if s.txFrames >= s.srv.cfg.txLimit {
		return violation(f.Command, "transaction too large", "open transactions may hold "+strconv.Itoa(s.srv.cfg.txLimit)+" frames")
	}
	s.txFrames++
	if s.txs == nil {
		s.txs = make(map[string]*transaction)
	}
	s.txs[tx] = &transaction{}
	return nil
}

func (s *Session) endTx(f *frame.Frame) (*transaction, error) {
	tx, err := txID(f)
	if err != nil {
		return nil, err
	}
	t := s.txs[tx]
	if t == nil {
		return nil, violation(f.Command, "unknown transaction", "no transaction "+tx)
	}
	delete(s.txs, tx)
	s.txFrames -= 1 + len(t.ops)
	s.txBytes -= t.bytes
	return t, nil
}

func (s *Session) onCommit(f *frame.Frame) error {
	t, err := s.endTx(f)
	if err != nil {
		return err
	}
	// Every ACK and NACK must still resolve, in order (the client may
	// have acked the message outside the transaction since, or a
	// cumulative ACK of the transaction may cover it), before anything is
	// applied: a COMMIT that fails applies nothing of the transaction.
	if err := s.simulate(t); err != nil {
		return err
	}
	for _, op := range t.ops {
		if op.msg != nil {
			s.waitRoom(true)
			if s.isClosing() { // ended while waiting for room: apply no more
				return ErrSessionClosed
			}
			op.msg.Receipt = s.curReceipt
			err = s.callSend(op.msg)
		} else {
			af := &frame.Frame{Command: op.cmd, Header: op.header}
			var a *Ack
			if a, err = s.resolve(af, true); err == nil {
				a.Transaction = a.Header.Get(frame.HdrTransaction) // a's copy: f's may be views
				err = s.ack(op.cmd, a)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *Session) onAbort(f *frame.Frame) error {
	_, err := s.endTx(f)
	return err
}

// onDisconnect ends the session gracefully: open transactions are
// discarded, the handler told, then the RECEIPT (if asked for) is the last
// frame written.
func (s *Session) onDisconnect(f *frame.Frame) error {
	// The DISCONNECT's RECEIPT confirms every frame before it.
	s.waitDrained()
	s.txs = nil
	s.mu.Lock()
	clear(s.subs)
	s.acks = nil
	s.mu.Unlock()
	s.said = true
	s.safely("Disconnect", func() { s.srv.h.Disconnect(s.ctx, s, nil) })
	var rf *frame.Frame
	if r, ok := f.Header.Lookup(frame.HdrReceipt); ok {
		rf = frame.New(frame.CmdReceipt, frame.HdrReceiptID, r)
	}
	s.shutdown(nil, rf)
	return errDisconnected
}
