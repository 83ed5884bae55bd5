package asr

import "github.com/chorus-asr/chorus/asr/formats"

func writeCk(path string, ck *formats.Checkpoint) error {
	return formats.WriteSafetensorsFile(path, ck, false)
}
