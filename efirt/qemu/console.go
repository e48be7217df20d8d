//go:build linux

package qemu

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// cleaner strips terminal escape sequences, carriage returns and other
// control characters from the firmware console. It is a state machine so a
// sequence split across reads is still removed.
type cleaner struct {
	state     int
	lineStart bool // nothing emitted yet on the current line
	spaces    int  // spaces held back: trailing ones are dropped
}

const (
	stText      = iota
	stEsc       // after ESC
	stCSI       // inside ESC [ ...
	stEscInter  // ESC followed by intermediate bytes, waiting for the final byte
	stString    // OSC/DCS/SOS/PM/APC body, ends with BEL or ESC \
	stStringEsc // ESC seen inside a string: maybe the terminator
)

func newCleaner() *cleaner { return &cleaner{lineStart: true} }

// clean appends the text in src to dst without escape sequences.
func (c *cleaner) clean(dst, src []byte) []byte {
	for _, b := range src {
		switch c.state {
		case stText:
			switch {
			case b == 0x1b:
				c.state = stEsc
			case b == '\n':
				dst = append(dst, b)
				c.lineStart, c.spaces = true, 0
			case b == ' ':
				// Menus paint whole screens of blanks; hold spaces back
				// until text follows on the line.
				c.spaces++
			case b < 0x20 && b != '\t' || b == 0x7f:
				// \r, BEL, backspace...: no text, and \r would garble logs.
			default:
				for ; c.spaces > 0; c.spaces-- {
					dst = append(dst, ' ')
				}
				dst = append(dst, b)
				c.lineStart = false
			}
		case stEsc:
			switch {
			case b == '[':
				c.state = stCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				c.state = stString
			case b == 0x1b:
				// ESC ESC: the first one was a lone ESC.
			case b >= 0x20 && b <= 0x2f:
				c.state = stEscInter
			default:
				// Two-byte sequence (ESC 7, ESC c, ...) ends here.
				c.state = stText
			}
		case stCSI:
			switch {
			case b >= 0x40 && b <= 0x7e:
				c.state = stText
				// The firmware positions the cursor instead of starting a
				// new line (the shell's countdown, menus): keep such text
				// on separate lines.
				if b == 'H' || b == 'f' {
					if !c.lineStart {
						dst = append(dst, '\n')
						c.lineStart = true
					}
					c.spaces = 0
				}
			case b >= 0x20 && b <= 0x3f:
				// Parameter or intermediate byte.
			case b == 0x1b:
				c.state = stEsc
			default:
				c.state = stText // malformed: drop it
			}
		case stEscInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
			case b == 0x1b:
				c.state = stEsc
			default:
				c.state = stText
			}
		case stString:
			switch b {
			case 0x07:
				c.state = stText
			case 0x1b:
				c.state = stStringEsc
			}
		case stStringEsc:
			switch b {
			case '\\':
				c.state = stText
			case 0x1b:
			default:
				c.state = stString
			}
		}
	}
	return dst
}

// exitMarker is what the guest runtime prints when the program exits.
const exitMarker = "efirt: exit_group("

// parseExitMarker finds the exit marker in a cleaned console line and
// returns the exit status as the low 8 bits, as a Unix parent would see it.
func parseExitMarker(line string) (status int, ok bool) {
	i := strings.Index(line, exitMarker)
	if i < 0 {
		return 0, false
	}
	rest := line[i+len(exitMarker):]
	end := strings.IndexByte(rest, ')')
	if end < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(rest[:end], 10, 64)
	if err != nil {
		return 0, false
	}
	return int(n & 0xff), true
}

// firmwareFailure tells whether a console line seen before the exit marker
// means the program cannot run (or has stopped running) without ever
// reporting its status, and says why. started tells whether the firmware has
// already started a boot option, so falling through to the next one means
// the program returned without the marker.
func firmwareFailure(line string, started bool) (reason string, failed bool) {
	switch {
	case strings.Contains(line, "No bootable option or device was found"):
		return "firmware: No bootable option or device was found", true
	case strings.Contains(line, "BdsDxe: failed to "):
		return "firmware: " + line[strings.Index(line, "BdsDxe: "):], true
	case strings.Contains(line, "Exception Type - ") && strings.Contains(line, "!!!!"):
		msg := strings.Join(strings.Fields(strings.Trim(strings.TrimSpace(line), "!")), " ")
		return "firmware: CPU exception: " + msg, true
	case armException.MatchString(line):
		// ArmPkg's default handler (AAVMF) reports and then spins.
		return "firmware: CPU exception: " + armException.FindString(line), true
	case started && (strings.Contains(line, "BdsDxe: loading Boot") || strings.Contains(line, "BdsDxe: starting Boot")):
		next := line[strings.Index(line, "BdsDxe: "):]
		return "firmware: the program returned without reporting an exit status; the firmware went on with: " + next, true
	}
	return "", false
}

// armException is how EDK2's AArch64 exception handler opens its report.
var armException = regexp.MustCompile(`(Synchronous|IRQ|FIQ|SError) Exception at 0x[0-9A-Fa-f]+`)

// maxConsole bounds the console text kept in memory; a guest printing in a
// loop until the timeout must not exhaust the host.
const maxConsole = 64 << 20

// maxLine bounds a console line kept for matching.
const maxLine = 64 << 10

// console follows the cleaned serial output: it copies it to the caller,
// keeps it, and watches lines for the exit marker and firmware failures.
// Only the goroutine reading QEMU's stdout uses it until that goroutine ends.
type console struct {
	cl     *cleaner
	out    io.Writer
	start  time.Time
	marker string // Config.FirstLineMarker
	skip   int    // exit markers still to pass over (Config.ChildExits)

	text      []byte
	truncated bool
	line      []byte
	scanned   int  // bytes of line already searched for the first-line marker
	started   bool // the firmware has started a boot option

	firstOutput time.Duration

	decided  bool
	exited   bool
	status   int
	failure  string
	decideAt time.Time
}

func newConsole(out io.Writer, start time.Time, marker string) *console {
	return &console{cl: newCleaner(), out: out, start: start, marker: marker}
}

// feed processes a chunk of raw serial output read at now and reports
// whether it just decided the outcome of the run.
func (c *console) feed(raw []byte, now time.Time) bool {
	clean := c.cl.clean(nil, raw)
	if len(clean) == 0 {
		return false
	}
	if c.out != nil {
		if _, err := c.out.Write(clean); err != nil {
			c.out = nil // a broken caller writer must not stop the run
		}
	}
	if !c.truncated && len(c.text)+len(clean) <= maxConsole {
		c.text = append(c.text, clean...)
	} else {
		c.truncated = true
	}
	wasDecided := c.decided
	for len(clean) > 0 {
		i := bytes.IndexByte(clean, '\n')
		if i < 0 {
			c.line = append(c.line, clean...)
			if len(c.line) > maxLine {
				// Output that never ends its line is still watched, in pieces.
				c.completeLine(now)
			}
			break
		}
		c.line = append(c.line, clean[:i]...)
		clean = clean[i+1:]
		c.completeLine(now)
	}
	// The marker may show up before its line ends.
	c.noteFirstLine(now)
	return c.decided && !wasDecided
}

// finish processes a last line without a newline once the output ends.
func (c *console) finish(now time.Time) {
	if len(c.line) > 0 {
		c.completeLine(now)
	}
}

// completeLine checks the line gathered so far and starts a new one.
func (c *console) completeLine(now time.Time) {
	c.noteFirstLine(now)
	line := string(c.line)
	c.line, c.scanned = c.line[:0], 0
	if c.decided {
		return
	}
	if status, ok := parseExitMarker(line); ok {
		if c.skip > 0 {
			c.skip-- // a chain-loaded efirt program's exit, not the program's
			return
		}
		c.decided, c.exited, c.status, c.decideAt = true, true, status, now
		return
	}
	if reason, failed := firmwareFailure(line, c.started); failed {
		c.decided, c.failure, c.decideAt = true, reason, now
		return
	}
	if strings.Contains(line, "BdsDxe: starting Boot") {
		c.started = true
	}
}

func (c *console) noteFirstLine(now time.Time) {
	if c.marker == "" || c.firstOutput != 0 {
		return
	}
	// Search only what is new, plus enough before it for a marker that
	// straddles two reads.
	from := max(0, c.scanned-len(c.marker)+1)
	if bytes.Contains(c.line[from:], []byte(c.marker)) {
		c.firstOutput = now.Sub(c.start)
	}
	c.scanned = len(c.line)
}

func (c *console) String() string {
	if c.truncated {
		return string(c.text) + "\n[console output truncated]\n"
	}
	return string(c.text)
}
