#!/bin/bash
# capacity tables: every rule x {unbiased, density 0.1, correlation 0.3} at d = 256 (2 trials) and d = 1024 (1 trial)
cd /work/main
LOADS=0.02,0.05,0.1,0.14,0.2,0.3,0.5,1.0
for dim in 256 1024; do
  if [ $dim = 256 ]; then T=2; else T=1; fi
  for rule in hebbian storkey storkey_reference pseudoinverse covariance modern; do
    supsup capacity --rule $rule --dim $dim --loads $LOADS --noise 0.1 --trials $T --json /tmp/cap/${rule}_${dim}_unbiased.json > /tmp/cap/${rule}_${dim}_unbiased.txt 2>/dev/null
    supsup capacity --rule $rule --dim $dim --density 0.1 --loads $LOADS --noise 0.1 --trials $T --json /tmp/cap/${rule}_${dim}_p0.1.json > /tmp/cap/${rule}_${dim}_p0.1.txt 2>/dev/null
    supsup capacity --rule $rule --dim $dim --correlation 0.3 --loads $LOADS --noise 0.1 --trials $T --json /tmp/cap/${rule}_${dim}_corr0.3.json > /tmp/cap/${rule}_${dim}_corr0.3.txt 2>/dev/null
    echo "$rule $dim done $(date +%T)"
  done
done
