"""Verify a Latchkey access token with PyJWT through the JWKS, as a Python backend would.

Usage: verify_pyjwt.py ISSUER TOKEN
Prints the `sub` claim and exits 0 when the token is valid; prints the PyJWT error
class and exits 1 when it is not.
"""
import sys

import jwt


def main() -> int:
    issuer, token = sys.argv[1], sys.argv[2]
    client = jwt.PyJWKClient(f"{issuer}/oauth2/jwks")
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["RS256", "ES256", "EdDSA"],
            audience=issuer,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub"]},
            leeway=0,
        )
    except jwt.PyJWTError as e:
        print(type(e).__name__)
        return 1
    print(claims["sub"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
