package dns

import "encoding/binary"

// MaxTCPMessage is the largest DNS message a 2-byte length prefix can carry.
const MaxTCPMessage = 65535

// MaxTCPBuffered bounds the bytes of an incomplete message a TCPFramer keeps
// between calls: one message and its prefix. The framer owns two such buffers
// (so a message delivered from one stays valid while the other takes the next
// carry-over), so its memory is at most 2*MaxTCPBuffered.
const MaxTCPBuffered = 2 + MaxTCPMessage

// TCPFramer cuts one direction of a DNS-over-TCP stream (RFC 1035 4.2.2,
// RFC 7766) into messages. Feed it the in-order stream bytes; on a gap in the
// stream call Reset, since framing cannot be recovered mid-message.
type TCPFramer struct {
	bufs    [2][]byte
	cur     int // index of the buffer holding the incomplete message
	empty   uint64
	dropped uint64
}

// Feed appends the complete messages that seg finishes (zero or more) to out.
// The returned slices alias seg or the framer's buffers: they are valid until
// the next call to Feed or Reset and as long as the caller does not modify
// seg. Zero-length messages are skipped and counted (EmptyMessages).
// Bytes of an incomplete message are copied and kept (bounded by
// MaxTCPBuffered); the buffers are reused, so steady state does not allocate.
func (f *TCPFramer) Feed(seg []byte, out [][]byte) [][]byte {
	buf := f.bufs[f.cur]
	fromBuf := false
	if len(buf) > 0 {
		// Complete the carried-over message first, copying only what it needs.
		if len(buf) < 2 {
			n := min(2-len(buf), len(seg))
			buf = append(buf, seg[:n]...)
			seg = seg[n:]
			if len(buf) < 2 {
				f.bufs[f.cur] = buf
				return out
			}
		}
		want := 2 + int(binary.BigEndian.Uint16(buf))
		n := min(want-len(buf), len(seg))
		buf = append(buf, seg[:n]...)
		seg = seg[n:]
		if len(buf) < want {
			f.bufs[f.cur] = buf
			return out
		}
		out = f.deliver(buf[2:want], out)
		f.bufs[f.cur] = buf[:0]
		fromBuf = true
	}
	for len(seg) >= 2 {
		want := 2 + int(binary.BigEndian.Uint16(seg))
		if len(seg) < want {
			break
		}
		out = f.deliver(seg[2:want], out)
		seg = seg[want:]
	}
	if len(seg) > 0 {
		if fromBuf {
			// The message just delivered lives in the current buffer:
			// carry over into the other one.
			f.cur ^= 1
		}
		f.bufs[f.cur] = append(f.bufs[f.cur][:0], seg...)
	}
	return out
}

// Reset discards any incomplete message, counting it in DroppedBytes; call it
// when the stream has a gap.
func (f *TCPFramer) Reset() {
	f.dropped += uint64(len(f.bufs[f.cur]))
	f.bufs[f.cur] = f.bufs[f.cur][:0]
}

// Buffered returns the bytes of the incomplete message held.
func (f *TCPFramer) Buffered() int { return len(f.bufs[f.cur]) }

// EmptyMessages returns how many zero-length messages were skipped.
func (f *TCPFramer) EmptyMessages() uint64 { return f.empty }

// DroppedBytes returns how many buffered bytes Reset discarded.
func (f *TCPFramer) DroppedBytes() uint64 { return f.dropped }

func (f *TCPFramer) deliver(msg []byte, out [][]byte) [][]byte {
	if len(msg) == 0 {
		f.empty++
		return out
	}
	return append(out, msg)
}
