//! BSON Decimal128 (IEEE 754-2008 decimal128, binary integer encoding) to and
//! from Arrow's (unscaled `i128`, scale) pairs.
//!
//! The driver keeps Decimal128 as 16 opaque bytes, so the few bit fields are
//! read here: sign, a 14-bit exponent biased by 6176 and a 113-bit
//! coefficient.

const EXPONENT_BIAS: i32 = 6176;
const MAX_COEFFICIENT: u128 = 9_999_999_999_999_999_999_999_999_999_999; // 34 digits

/// A finite decimal128 value: `coefficient × 10^exponent`, negative if `negative`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finite {
    pub negative: bool,
    pub coefficient: u128,
    pub exponent: i32,
}

/// Decodes little-endian decimal128 bytes; `None` for NaN and infinities.
pub fn decode(bytes: [u8; 16]) -> Option<Finite> {
    let bits = u128::from_le_bytes(bytes);
    let negative = bits >> 127 == 1;
    let combination = (bits >> 122) & 0x1f;
    if combination >= 0b11110 {
        return None; // infinity (11110) or NaN (11111)
    }
    let (exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
        // The "large coefficient" form is always above 10^34: non-canonical, zero.
        (((bits >> 111) & 0x3fff) as i32, 0)
    } else {
        (((bits >> 113) & 0x3fff) as i32, bits & ((1u128 << 113) - 1))
    };
    let coefficient = if coefficient > MAX_COEFFICIENT {
        0
    } else {
        coefficient
    };
    Some(Finite {
        negative,
        coefficient,
        exponent: exponent - EXPONENT_BIAS,
    })
}

/// Encodes `unscaled × 10^-scale`; `None` when the coefficient needs more than 34 digits.
pub fn encode(unscaled: i128, scale: i8) -> Option<[u8; 16]> {
    let coefficient = unscaled.unsigned_abs();
    if coefficient > MAX_COEFFICIENT {
        return None;
    }
    let exponent = (EXPONENT_BIAS - scale as i32) as u128;
    let sign = if unscaled < 0 { 1u128 << 127 } else { 0 };
    Some((sign | (exponent << 113) | coefficient).to_le_bytes())
}

impl Finite {
    /// The scale this value needs (digits after the point, 0 for integers).
    pub fn scale(&self) -> i32 {
        (-self.exponent).max(0)
    }

    /// The unscaled value at `scale`, if exact and within `i128`.
    pub fn unscaled_at(&self, scale: i8) -> Option<i128> {
        let shift = self.exponent + scale as i32;
        let magnitude = if shift >= 0 {
            10u128
                .checked_pow(shift as u32)
                .and_then(|p| self.coefficient.checked_mul(p))?
        } else {
            let divisor = 10u128.checked_pow((-shift) as u32)?;
            if !self.coefficient.is_multiple_of(divisor) {
                return None; // would lose digits
            }
            self.coefficient / divisor
        };
        let magnitude = i128::try_from(magnitude).ok()?;
        Some(if self.negative { -magnitude } else { magnitude })
    }

    /// Plain decimal text, as PostgreSQL prints numerics (`-12.50`, `3E+2` → `300`).
    pub fn to_plain_string(&self) -> String {
        let digits = self.coefficient.to_string();
        let sign = if self.negative && self.coefficient != 0 {
            "-"
        } else {
            ""
        };
        if self.exponent >= 0 {
            if self.coefficient == 0 {
                return "0".into();
            }
            return format!("{sign}{digits}{}", "0".repeat(self.exponent as usize));
        }
        koios_connector::decimal_string(&format!("{sign}{digits}"), (-self.exponent).min(127) as i8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_prints() {
        for (unscaled, scale, text) in [
            (12345i128, 2i8, "123.45"),
            (-5, 0, "-5"),
            (0, 3, "0.000"),
            (1, 10, "0.0000000001"),
        ] {
            let bytes = encode(unscaled, scale).expect("fits");
            let value = decode(bytes).expect("finite");
            assert_eq!(value.unscaled_at(scale), Some(unscaled));
            assert_eq!(value.to_plain_string(), text);
        }
        // 1.5 is not exact at scale 0; 3E+2 is 300.
        let v = decode(encode(15, 1).expect("fits")).expect("finite");
        assert_eq!(v.unscaled_at(0), None);
        assert_eq!(v.unscaled_at(3), Some(1500));
        let hundreds = Finite {
            negative: false,
            coefficient: 3,
            exponent: 2,
        };
        assert_eq!(hundreds.to_plain_string(), "300");
        assert_eq!(encode(i128::MAX, 0), None);
    }
}
