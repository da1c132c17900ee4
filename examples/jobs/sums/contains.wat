;; Reward 1 when the completion contains the gold answer (byte substring), else 0:
;; the same reward as the built-in `{"kind": "regex", "pattern": "{answer}"}`.
(module
  (memory (export "memory") 1)
  (global $top (mut i32) (i32.const 1024))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (local.get $n)))
    ;; grow when the bump pointer passes the end of memory
    (if (i32.gt_u (global.get $top) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.add (i32.div_u (i32.sub (global.get $top) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65536)) (i32.const 1))))))
    (local.get $p))
  (func (export "reward") (param $c i32) (param $cl i32) (param $g i32) (param $gl i32)
                          (param $m i32) (param $ml i32) (result f64)
    (local $i i32) (local $j i32)
    (block $done
      (loop $outer
        (br_if $done (i32.gt_s (i32.add (local.get $i) (local.get $gl)) (local.get $cl)))
        (local.set $j (i32.const 0))
        (block $miss
          (loop $inner
            (if (i32.ge_u (local.get $j) (local.get $gl)) (then (return (f64.const 1))))
            (br_if $miss (i32.ne
              (i32.load8_u (i32.add (local.get $c) (i32.add (local.get $i) (local.get $j))))
              (i32.load8_u (i32.add (local.get $g) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (f64.const 0)))
