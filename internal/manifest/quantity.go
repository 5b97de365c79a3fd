package manifest

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
)

// The Kubernetes resource quantities Convox checks sizes with
// (k8s.io/apimachinery resource.ParseQuantity), with its error messages.

const quantityPattern = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

var (
	errQuantityFormat  = errors.New("quantities must match the regular expression '" + quantityPattern + "'")
	errQuantityNumeric = errors.New("unable to parse numeric part of quantity")
	errQuantitySuffix  = errors.New("unable to parse quantity's suffix")
)

var hundredGi = new(big.Rat).SetInt64(100 << 30)

// parseQuantity reads a quantity such as 512Mi, 1.5G, 100m or 1e3 and
// returns its value, or ParseQuantity's error.
func parseQuantity(str string) (*big.Rat, error) {
	if str == "" {
		return nil, errQuantityFormat
	}
	if str == "0" {
		return new(big.Rat), nil
	}
	value, suffix, err := splitQuantity(str)
	if err != nil {
		return nil, err
	}
	mult, ok := quantitySuffix(suffix)
	if !ok {
		return nil, errQuantitySuffix
	}
	// As Kubernetes reads it, a missing integer or fraction part is 0:
	// "Mi", ".5" and "1." are quantities.
	sign, digits := "", strings.TrimLeft(value, "+-")
	if strings.HasPrefix(value, "-") {
		sign = "-"
	}
	whole, frac, _ := strings.Cut(digits, ".")
	v, ok := new(big.Rat).SetString(sign + "0" + whole + "." + frac + "0")
	if !ok {
		return nil, errQuantityNumeric
	}
	return v.Mul(v, mult), nil
}

// splitQuantity is ParseQuantity's parseQuantityString: the signed number
// and the suffix.
func splitQuantity(str string) (value, suffix string, err error) {
	pos, end := 0, len(str)
	if str[0] == '-' || str[0] == '+' {
		pos++
	}
	digits := func(from int) int {
		for from < end && str[from] >= '0' && str[from] <= '9' {
			from++
		}
		return from
	}
	pos = digits(pos)
	if pos < end && str[pos] == '.' {
		pos = digits(pos + 1)
	}
	value = str[:pos]
	start := pos
	for pos < end && strings.IndexByte("eEinumkKMGTP", str[pos]) >= 0 {
		pos++
	}
	if pos < end && (str[pos] == '-' || str[pos] == '+') {
		pos++
	}
	if digits(pos) != end {
		return "", "", errQuantityFormat
	}
	return value, str[start:], nil
}

// quantitySuffix is the multiplier of a binary (Ki...Ei), decimal (n...E)
// or exponent (e3, E-2) suffix.
func quantitySuffix(s string) (*big.Rat, bool) {
	pow := func(base, exp int64) *big.Rat {
		r := new(big.Rat).SetInt64(1)
		b := new(big.Rat).SetInt64(base)
		if exp < 0 {
			b.Inv(b)
			exp = -exp
		}
		for ; exp > 0; exp-- {
			r.Mul(r, b)
		}
		return r
	}
	binary := map[string]int64{"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
	decimal := map[string]int64{"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
	if e, ok := binary[s]; ok {
		return pow(2, e), true
	}
	if e, ok := decimal[s]; ok {
		return pow(10, e), true
	}
	if len(s) > 1 && (s[0] == 'e' || s[0] == 'E') {
		e, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil || e > 1000 || e < -1000 {
			return nil, false
		}
		return pow(10, e), true
	}
	return nil, false
}
