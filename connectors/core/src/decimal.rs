//! Decimal text from unscaled integers: one formatting for every connector
//! that turns a server's decimals into text.

/// A decimal from its unscaled integer text and scale: (`"-12345"`, 2) → `-123.45`.
pub fn decimal_string(unscaled: &str, scale: i8) -> String {
    let mut out = String::with_capacity(unscaled.len() + 2);
    push_decimal(&mut out, unscaled, scale);
    out
}

/// Appends [`decimal_string`]`(unscaled, scale)` to `out` without
/// allocating: result encoding calls it once per value.
pub fn push_decimal(out: &mut String, unscaled: &str, scale: i8) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    if scale <= 0 {
        if digits == "0" {
            out.push('0');
            return;
        }
        if negative {
            out.push('-');
        }
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (-(scale as i32)) as usize));
        return;
    }
    if negative {
        out.push('-');
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.push('0');
        out.push('.');
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// Appends the decimal with unscaled value `unscaled` and `scale` to `out`
/// (as [`push_decimal`]), formatting the integer on the stack.
pub fn push_decimal_i128(out: &mut String, unscaled: i128, scale: i8) {
    // i128::MIN has 39 digits and a sign.
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = unscaled.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if unscaled < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    let text = std::str::from_utf8(&digits[at..]).unwrap_or("0");
    push_decimal(out, text, scale);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_format_from_text_and_from_integers_alike() {
        for (unscaled, scale, expected) in [
            (0i128, 2, "0.00"),
            (5, 2, "0.05"),
            (-5, 2, "-0.05"),
            (12345, 2, "123.45"),
            (-12345, 2, "-123.45"),
            (100, 0, "100"),
            (-7, -3, "-7000"),
            (0, -3, "0"),
            (i128::MIN, 0, "-170141183460469231731687303715884105728"),
            (i128::MAX, 38, "1.70141183460469231731687303715884105727"),
        ] {
            assert_eq!(decimal_string(&unscaled.to_string(), scale), expected);
            let mut out = String::from("x");
            push_decimal_i128(&mut out, unscaled, scale);
            assert_eq!(out, format!("x{expected}"));
        }
    }
}
