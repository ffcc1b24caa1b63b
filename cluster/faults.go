package cluster

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Faults injects network faults into one member's tier traffic, for
// tests (Config.Faults): a cut, as a network partition makes, and a
// one-way delay, as a wide-area network adds. Its methods may be called at
// any time, from any goroutine.
//
// A cut fails all of the member's tier traffic, both ways: memberlist
// packets it sends or receives are lost, memberlist streams it dials fail
// and those it accepts are closed unread, operations it forwards fail
// before they are sent, and operations forwarded to it are answered 503
// (unlike DropIncoming, which accepts and loses them). The others see it
// stop answering, as it sees them.
//
// A delay holds every memberlist packet the member sends and every write
// on its memberlist streams and on its connections to peers' control
// listeners for that long before it goes out; set on every member, a round
// trip takes twice the delay.
type Faults struct {
	cut     atomic.Bool
	delay   atomic.Int64 // nanoseconds
	delayed atomic.Uint64
	lost    atomic.Uint64
}

// errCut is what a dial or a send fails with during a cut.
var errCut = errors.New("cluster: tier traffic cut (injected fault)")

// Cut starts (true) or ends (false) a cut.
func (f *Faults) Cut(cut bool) { f.cut.Store(cut) }

// Delay sets the one-way delay (zero: none).
func (f *Faults) Delay(d time.Duration) { f.delay.Store(int64(d)) }

// Delayed counts packets and writes held back by a delay so far.
func (f *Faults) Delayed() uint64 { return f.delayed.Load() }

// Lost counts packets, streams and operation requests a cut failed so far.
func (f *Faults) Lost() uint64 { return f.lost.Load() }

// isCut reports whether traffic is cut now (false for a nil Faults), and
// counts what it fails.
func (f *Faults) isCut() bool {
	if f == nil || !f.cut.Load() {
		return false
	}
	f.lost.Add(1)
	return true
}

// wait sleeps out the delay, if any, and counts it.
func (f *Faults) wait() {
	if f == nil {
		return
	}
	if d := time.Duration(f.delay.Load()); d > 0 {
		f.delayed.Add(1)
		time.Sleep(d)
	}
}

// dial connects to addr for the operations client, through the faults.
func (f *Faults) dial(addr string) (net.Conn, error) {
	if f.isCut() {
		return nil, errCut
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return faultConn{conn, f}, nil
}

// faultConn is a connection whose writes are delayed and fail during a
// cut.
type faultConn struct {
	net.Conn
	f *Faults
}

func (c faultConn) Write(b []byte) (int, error) {
	if c.f.isCut() {
		c.Conn.Close()
		return 0, errCut
	}
	c.f.wait()
	return c.Conn.Write(b)
}

// faultTransport is memberlist's NetTransport with Faults applied.
type faultTransport struct {
	*memberlist.NetTransport
	f       *Faults
	packets chan *memberlist.Packet
	streams chan net.Conn
	delayQ  chan delayedPacket
	stop    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type delayedPacket struct {
	b    []byte
	addr memberlist.Address
	due  time.Time
}

// newFaultTransport binds memberlist's NetTransport on host:port (port 0:
// one the system picks, retried as memberlist does for UDP and TCP to
// agree) and applies f to it.
func newFaultTransport(f *Faults, host string, port int, mc *memberlist.Config) (*faultTransport, error) {
	var nt *memberlist.NetTransport
	var err error
	for range 10 {
		nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: mc.Logger})
		if err == nil || port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	t := &faultTransport{NetTransport: nt, f: f,
		packets: make(chan *memberlist.Packet), streams: make(chan net.Conn),
		delayQ: make(chan delayedPacket, 1024), stop: make(chan struct{})}
	t.wg.Add(3)
	go t.forwardPackets()
	go t.forwardStreams()
	go t.sendDelayed()
	return t, nil
}

// WriteTo implements memberlist.Transport.
func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport: a packet is
// lost during a cut and queued for its delay when there is one (lost too
// when a thousand are queued, as a full network buffer would).
func (t *faultTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	if t.f.isCut() {
		return time.Now(), nil
	}
	d := time.Duration(t.f.delay.Load())
	if d <= 0 {
		return t.NetTransport.WriteToAddress(b, addr)
	}
	t.f.delayed.Add(1)
	select {
	case t.delayQ <- delayedPacket{b: append([]byte(nil), b...), addr: addr, due: time.Now().Add(d)}:
	default:
	}
	return time.Now(), nil
}

// sendDelayed sends queued packets when they are due, in order.
func (t *faultTransport) sendDelayed() {
	defer t.wg.Done()
	for {
		select {
		case <-t.stop:
			return
		case p := <-t.delayQ:
			if wait := time.Until(p.due); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-t.stop:
					timer.Stop()
					return
				case <-timer.C:
				}
			}
			if !t.f.isCut() {
				t.NetTransport.WriteToAddress(p.b, p.addr)
			}
		}
	}
}

// DialTimeout implements memberlist.Transport.
func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *faultTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.f.isCut() {
		return nil, errCut
	}
	conn, err := t.NetTransport.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return faultConn{conn, t.f}, nil
}

// PacketCh implements memberlist.Transport: packets received during a cut
// are lost.
func (t *faultTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh implements memberlist.Transport: streams accepted during a cut
// are closed.
func (t *faultTransport) StreamCh() <-chan net.Conn { return t.streams }

func (t *faultTransport) forwardPackets() {
	defer t.wg.Done()
	in := t.NetTransport.PacketCh()
	for {
		select {
		case <-t.stop:
			return
		case p := <-in:
			if t.f.isCut() {
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		}
	}
}

func (t *faultTransport) forwardStreams() {
	defer t.wg.Done()
	in := t.NetTransport.StreamCh()
	for {
		select {
		case <-t.stop:
			return
		case conn := <-in:
			if t.f.isCut() {
				conn.Close()
				continue
			}
			select {
			case t.streams <- faultConn{conn, t.f}:
			case <-t.stop:
				conn.Close()
				return
			}
		}
	}
}

// Shutdown implements memberlist.Transport.
func (t *faultTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	t.wg.Wait()
	return err
}
