package milter

import "testing"

func TestOrcptParam(t *testing.T) {
	for in, want := range map[string]string{
		"carol@example.com":  "ORCPT=rfc822;carol@example.com",
		"a+b=c@example.com":  "ORCPT=rfc822;a+2Bb+3Dc@example.com",
		"Zz@Bücher.test":     "ORCPT=utf-8;Zz@Bücher.test",
		"jö+x=y@bücher.test": `ORCPT=utf-8;jö\x{2B}x\x{3D}y@bücher.test`,
	} {
		if got := orcptParam(in); got != want {
			t.Errorf("orcptParam(%q) = %q, want %q", in, got, want)
		}
	}
}
