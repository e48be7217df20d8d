package efirt

import (
	"testing"
	"time"
)

func efiTime(t time.Time, tz int16) *[16]byte {
	var b [16]byte
	b[0], b[1] = byte(t.Year()), byte(t.Year()>>8)
	b[2], b[3], b[4], b[5], b[6] = byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())
	ns := uint32(t.Nanosecond())
	b[8], b[9], b[10], b[11] = byte(ns), byte(ns>>8), byte(ns>>16), byte(ns>>24)
	b[12], b[13] = byte(tz), byte(uint16(tz)>>8)
	return &b
}

func TestEFITimeToUnix(t *testing.T) {
	for _, want := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 23, 59, 59, 999999999, time.UTC),
		time.Date(2024, 12, 31, 12, 0, 0, 5, time.UTC),
		time.Date(2026, 11, 25, 1, 2, 3, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
	} {
		sec, nsec := EFITimeToUnix(efiTime(want, 2047))
		if got := time.Unix(sec, nsec).UTC(); !got.Equal(want) {
			t.Errorf("%v: got %v", want, got)
		}
	}
	// A zone 60 minutes from UTC: local 10:00 is 09:00 UTC.
	local := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	sec, _ := EFITimeToUnix(efiTime(local, 60))
	if got := time.Unix(sec, 0).UTC(); !got.Equal(local.Add(-time.Hour)) {
		t.Errorf("time zone 60: got %v", got)
	}
}
