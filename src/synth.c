/* synth: not written yet */
